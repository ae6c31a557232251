"""The end-offset check of table recovery: what it reads, and its bounds (agents/end_offsets.py).

The broker behaviour it corrects is shown on the real broker in
tests/integration/test_end_offsets.py; here a fake consumer stands in, to show that the check
cannot hold a rebalance for long, always stops its consumer, and is skipped where it must be.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

import agents.batching
import agents.end_offsets as end_offsets
from agents.batching import BatchingApp
from agents.end_offsets import read_end_offsets

A, B, EMPTY, UNKNOWN = TP("cl", 0), TP("cl", 1), TP("cl", 2), TP("cl", 3)
REPORTED = {A: 6, B: 9, EMPTY: 0, UNKNOWN: None}


class FakeConsumer:
    """Records calls; ``log`` maps partition -> offsets in the log; ``hang`` names the step that never returns."""

    def __init__(self, log: dict[int, list[int]], hang: str | None = None, **config: Any) -> None:
        self.log, self.hang, self.config = log, hang, config
        self.assigned: list[Any] = []
        self.positions: dict[Any, int] = {}
        self.stopped = False
        self.started = False

    async def _maybe_hang(self, step: str) -> None:
        if self.hang == step:
            await asyncio.Event().wait()

    async def start(self) -> None:
        await self._maybe_hang("start")
        self.started = True

    def assign(self, tps: list[Any]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, tp: Any) -> None:
        pass

    async def getmany(self, *tps: Any, timeout_ms: int = 0) -> dict[Any, list[Any]]:
        await self._maybe_hang("getmany")
        await asyncio.sleep(timeout_ms / 1000 / 10)
        out = {}
        for tp in tps:
            records = [SimpleNamespace(offset=o) for o in self.log.get(tp.partition, []) if o >= self.positions[tp]]
            if records:
                out[tp] = records
        return out

    async def stop(self) -> None:
        await self._maybe_hang("stop")
        self.stopped = True


def _factory(made: list[FakeConsumer], log: dict[int, list[int]], hang: str | None = None) -> Any:
    def make(**config: Any) -> FakeConsumer:
        consumer = FakeConsumer(log, hang, **config)
        made.append(consumer)
        return consumer
    return make


def test_ends_move_past_the_last_batch_and_empty_partitions_are_not_read() -> None:
    made: list[FakeConsumer] = []
    # partition 0: batches at 0-4 and 5-14 (reported 6); partition 1: correct already (last offset 8)
    log = {0: list(range(15)), 1: list(range(9))}
    ends = asyncio.run(read_end_offsets(REPORTED, {"bootstrap_servers": "x"}, consumer_factory=_factory(made, log)))
    assert ends == {A: 15, B: 9, EMPTY: 0, UNKNOWN: None}
    (consumer,) = made
    assert sorted(tp.partition for tp in consumer.assigned) == [0, 1]
    assert {tp.partition: offset for tp, offset in consumer.positions.items()} == {0: 5, 1: 8}  # reported - 1
    assert consumer.config["group_id"] is None and consumer.config["bootstrap_servers"] == "x"
    assert consumer.stopped


def test_nothing_to_read_opens_no_consumer() -> None:
    made: list[FakeConsumer] = []
    ends = asyncio.run(read_end_offsets({EMPTY: 0, UNKNOWN: None}, {}, consumer_factory=_factory(made, {})))
    assert ends == {EMPTY: 0, UNKNOWN: None} and made == []


@pytest.mark.parametrize("hang", ["start", "getmany"])
def test_a_stuck_read_falls_back_to_the_reported_ends_in_time(hang: str, caplog: pytest.LogCaptureFixture) -> None:
    made: list[FakeConsumer] = []

    async def scenario() -> tuple[dict, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        ends = await read_end_offsets(REPORTED, {}, timeout=0.3, consumer_factory=_factory(made, {0: list(range(15))}, hang))
        return ends, loop.time() - started

    with caplog.at_level(logging.WARNING, logger="agents.end_offsets"):
        ends, took = asyncio.run(scenario())
    assert ends == REPORTED
    assert took < 1.0
    assert made[0].stopped
    assert "not read within" in caplog.text


def test_a_partly_read_log_keeps_what_was_found() -> None:
    """Partition 1's records never come (its log was truncated, say): partition 0's end still moves."""
    made: list[FakeConsumer] = []
    ends = asyncio.run(read_end_offsets(REPORTED, {}, timeout=0.3, consumer_factory=_factory(made, {0: list(range(15))})))
    assert ends == {A: 15, B: 9, EMPTY: 0, UNKNOWN: None}
    assert made[0].stopped


def test_a_client_error_falls_back_to_the_reported_ends() -> None:
    class Refused(FakeConsumer):
        async def start(self) -> None:
            raise ConnectionError("refused")

    made: list[FakeConsumer] = []

    def make(**config: Any) -> FakeConsumer:
        made.append(Refused({}, **config))
        return made[-1]

    assert asyncio.run(read_end_offsets(REPORTED, {}, consumer_factory=make)) == REPORTED
    assert made[0].stopped


def test_a_stop_that_hangs_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(end_offsets, "STOP_TIMEOUT_SECONDS", 0.2)
    made: list[FakeConsumer] = []

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await read_end_offsets(REPORTED, {}, consumer_factory=_factory(made, {0: list(range(15)), 1: [8]}, "stop"))
        return loop.time() - started

    assert asyncio.run(scenario()) < 1.0


def test_a_rebalance_cancelling_the_check_still_stops_its_consumer() -> None:
    """Faust cancels the recovery step when another rebalance starts: the consumer is stopped anyway."""
    made: list[FakeConsumer] = []

    async def scenario() -> None:
        check = asyncio.ensure_future(read_end_offsets(REPORTED, {}, consumer_factory=_factory(made, {}, "getmany")))
        await asyncio.sleep(0.05)
        check.cancel()
        with pytest.raises(asyncio.CancelledError):
            await check
        await asyncio.sleep(0)  # the shielded stop task finishes
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert made[0].stopped
    assert not end_offsets._stopping


def _consumer(monkeypatch: pytest.MonkeyPatch, config: dict | None) -> tuple[Any, list]:
    calls: list = []

    async def reported(self: Any, *partitions: TP) -> dict:
        return {tp: REPORTED[tp] for tp in partitions}

    async def check(reported: dict, config: dict) -> dict:
        calls.append((reported, config))
        return {**reported, A: 15}

    monkeypatch.setattr(aiokafka_driver.Consumer, "highwaters", reported)
    monkeypatch.setattr(agents.batching, "read_end_offsets", check)
    app = BatchingApp("end-offsets-test", broker="kafka://127.0.0.1:1")
    app.end_offsets_config = config
    return app.consumer, calls


def test_the_worker_consumer_checks_the_ends_recovery_reads_to(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer, calls = _consumer(monkeypatch, {"bootstrap_servers": "x"})
    ends = asyncio.run(consumer.highwaters(A, B))
    assert ends == {A: 15, B: 9}
    assert calls == [({A: 6, B: 9}, {"bootstrap_servers": "x"})]


def test_no_check_in_a_transaction_or_without_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer, calls = _consumer(monkeypatch, None)
    assert asyncio.run(consumer.highwaters(A)) == {A: 6}
    consumer, calls = _consumer(monkeypatch, {"bootstrap_servers": "x"})
    consumer.in_transaction = True
    assert asyncio.run(consumer.highwaters(A)) == {A: 6}
    assert calls == []
