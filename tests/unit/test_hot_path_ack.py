"""The order a run's acknowledgement and a flush's settling keep: forwarded records delivered,
state marked stored; then, for the whole flush, state durable (each key once) and its changelog
submitted; then the offsets acked.

A back-stitching hand-over carries an anonymous key's state to its customer while the staged
state deletes that key; if the deletion reached the changelog before the hand-over reached the
customers topic, a crash would lose the anonymous history. And an offset acknowledged before the
state it explains is durable can be committed, and the state lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.hot_path import HotPath, StageResult, acknowledgement
from agents.staged_table import StagedTable
from sinks.batcher import AckingSink
from sinks.clickhouse import InMemoryWriter
from sinks.metrics import Metrics


class _Table(dict):  # type: ignore[type-arg]
    """A table of encoded values that records its writes in the order of events."""

    def __init__(self, order: list[object]) -> None:
        super().__init__()
        self.order = order

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.order.append(f"durable {key.decode()}={value.decode()}")
        super().__setitem__(key, value)


class _Changelog:
    """The tables' outbox: records its submissions in the order of events."""

    def __init__(self, order: list[object]) -> None:
        self.order = order

    async def send(self) -> list[object]:
        self.order.append("changelog submitted")
        return []


def _decode(raw: bytes | None) -> list[int] | None:
    return None if raw is None else orjson.loads(raw)


def test_state_is_marked_stored_only_after_the_hand_overs_are_delivered() -> None:
    async def scenario() -> None:
        order: list[object] = []
        settling: list[object] = []
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        result = StageResult({}, durable=lambda: order.append("stored"))
        acked = lambda: order.append("acked")  # noqa: E731
        acknowledging = asyncio.ensure_future(acknowledgement(acked, result, [delivery], settling)())
        await asyncio.sleep(0.05)
        assert order == [] and settling == []  # still waiting for the broker
        delivery.set_result(None)
        await asyncio.wait_for(acknowledging, 1)
        assert order == ["stored"] and settling == [acked]  # the offsets wait for the flush to settle

    asyncio.run(scenario())


def test_a_failed_hand_over_marks_nothing_and_acknowledges_nothing() -> None:
    async def scenario() -> None:
        order: list[object] = []
        settling: list[object] = []
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_exception(ConnectionError("broker gone"))
        result = StageResult({}, durable=lambda: order.append("stored"))
        with pytest.raises(ConnectionError):
            await acknowledgement(lambda: order.append("acked"), result, [delivery], settling)()
        assert order == [] and settling == []

    asyncio.run(scenario())


def test_a_flush_makes_the_state_of_all_its_runs_durable_before_any_offset_is_acknowledged() -> None:
    """Two runs write the same customer: one durable write with the newest state, the changelog
    submitted, then both runs' offsets in order, then the latency metrics."""
    async def scenario() -> None:
        order: list[object] = []
        customers: StagedTable[list[int]] = StagedTable(_Table(order), orjson.dumps, _decode)
        identities: StagedTable[list[int]] = StagedTable(_Table(order), orjson.dumps, _decode)
        hot_path = SimpleNamespace(customers=customers, identities=identities, changelog=_Changelog(order),
                                   _settling=[])
        hot_path._write_stored = lambda: HotPath._write_stored(hot_path)  # type: ignore[arg-type]
        sink = AckingSink(InMemoryWriter, Metrics.create(CollectorRegistry()))
        sink.settle = lambda: HotPath.settle(hot_path)  # type: ignore[arg-type]
        for run, state in ((1, [1]), (2, [2])):
            result = StageResult({"touchpoints": [{"event_id": f"e{run}"}]}, customers.stage({b"c": state}),
                                 lambda run=run: order.append(f"after {run}"))
            sink.add(result.rows, acknowledgement(lambda run=run: order.append(f"acked {run}"), result, [],
                                                  hot_path._settling), result.after)
        # a run processed while the flush below runs (its acknowledgement made before that flush
        # settles), stored by the next flush: its offsets are acknowledged there
        later = StageResult({"touchpoints": [{"event_id": "e3"}]}, customers.stage({b"c": [3]}))
        acknowledge_later = acknowledgement(lambda: order.append("acked 3"), later, [], hot_path._settling)
        assert order == []
        await sink.flush()
        assert order == ["durable c=[2]", "changelog submitted", "acked 1", "acked 2", "after 1", "after 2"]
        assert customers.get(b"c") == [3] and hot_path._settling == []
        del order[:]
        sink.add(later.rows, acknowledge_later)
        await sink.flush()
        assert order == ["durable c=[3]", "changelog submitted", "acked 3"]

    asyncio.run(scenario())
