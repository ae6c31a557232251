"""AckingSink: acknowledge only after the insert; hold everything through an outage; dead-letter only refused rows."""

from __future__ import annotations

import asyncio
import time

import pytest
from clickhouse_driver import errors as ch_errors
from prometheus_client import CollectorRegistry

from sinks.batcher import AckingSink
from sinks.clickhouse import ClickHouseWriter, InMemoryWriter, SinkUnavailable
from sinks.metrics import Metrics
from touchpoint.localstack import free_port
from touchpoint.settings import ClickHouseTarget


def touchpoint_row(n: int) -> dict[str, object]:
    return {"event_id": f"evt-{n:05d}", "customer_key": "cust-synthetic-1", "journey_id": "jny-1",
            "channel": "web", "type": "page_view", "occurred_at": 0, "occurred_at_ms": n, "dimension": "",
            "score": 50.0, "component_names": [], "component_points": [], "feedback_kind": "",
            "feedback_score": 0, "value": 0.0, "friction": 0, "late": 0, "version": 1}


class Acks:
    """Records which events were acknowledged, as Faust's stream.ack would."""

    def __init__(self) -> None:
        self.done: list[int] = []

    def ack(self, n: int):
        async def call() -> None:
            self.done.append(n)
        return call


def make_sink(writer: object, **options: object) -> tuple[AckingSink, Metrics]:
    metrics = Metrics.create(CollectorRegistry())
    options.setdefault("retry_base_seconds", 0.001)
    options.setdefault("max_backoff_seconds", 0.01)
    return AckingSink(lambda: writer, metrics, 100, 0.1, **options), metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_buffer_is_flushed_flush_seconds_after_its_first_rows() -> None:
    """The flusher keeps a buffer's oldest row waiting flush_seconds (0.1 here), no longer, and
    stays asleep while nothing is buffered."""
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        sink, _ = make_sink(twin)
        flusher = asyncio.ensure_future(sink.flush_when_due())
        try:
            await asyncio.sleep(0.3)  # idle: nothing to store, nothing stored
            assert twin.tables["touchpoints"] == []
            for round_ in range(2):
                first = time.monotonic()
                sink.add({"touchpoints": [touchpoint_row(2 * round_)]}, ack=acks.ack(2 * round_))
                await asyncio.sleep(0.05)
                sink.add({"touchpoints": [touchpoint_row(2 * round_ + 1)]}, ack=acks.ack(2 * round_ + 1))
                assert acks.done == list(range(2 * round_))  # 0.05 s after the first row: not yet
                while len(acks.done) < 2 * round_ + 2:
                    await asyncio.sleep(0.005)
                waited = time.monotonic() - first
                assert 0.1 <= waited < 0.25, waited
                await asyncio.sleep(0.2)  # idle again between the rounds
            assert len(twin.tables["touchpoints"]) == 4
        finally:
            flusher.cancel()
    asyncio.run(scenario())


def test_events_are_acknowledged_only_after_their_rows_are_stored() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        sink, _ = make_sink(twin)
        for n in range(3):
            sink.add({"touchpoints": [touchpoint_row(n)]}, ack=acks.ack(n))
        await asyncio.sleep(0)
        assert acks.done == [] and twin.tables["touchpoints"] == []
        await sink.flush()
        assert acks.done == [0, 1, 2]
        assert len(twin.tables["touchpoints"]) == 3
    asyncio.run(scenario())


def test_an_outage_holds_rows_and_acks_without_limit_then_catches_up() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        twin.failures.extend(ch_errors.NetworkError("Connection refused") for _ in range(10_000))
        sink, metrics = make_sink(twin)
        for n in range(50):
            sink.add({"touchpoints": [touchpoint_row(n)]}, ack=acks.ack(n))
        flushing = asyncio.ensure_future(sink.flush())
        await asyncio.sleep(0.3)
        assert not flushing.done()  # far more attempts than any retry budget: still waiting
        assert acks.done == [] and not twin.tables["touchpoints"]
        assert sample(metrics, "cx_sink_blocked") == 1
        assert sample(metrics, "cx_sink_failures_total", table="touchpoints") > 10
        twin.failures.clear()  # the server is back
        await asyncio.wait_for(flushing, 5)
        assert acks.done == list(range(50))
        assert len(twin.tables["touchpoints"]) == 50
        assert not twin.tables["dead_letters"]  # an outage dead-letters nothing
        assert sample(metrics, "cx_sink_blocked") == 0
    asyncio.run(scenario())


def test_a_table_stored_before_the_outage_is_not_inserted_again() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        sink, _ = make_sink(twin)
        sink.add({"touchpoints": [touchpoint_row(1)], "dead_letters": [{
            "topic": "t", "partition": 0, "offset": 1, "reason": "r", "step": "s", "detail": "",
            "key": "", "payload": "", "received_at": 0}]}, ack=acks.ack(1))
        original = twin.insert
        calls: list[str] = []

        def insert(table: str, rows: object) -> None:
            calls.append(table)
            if table == "dead_letters" and calls.count("dead_letters") < 3:
                raise SinkUnavailable("synthetic outage")
            original(table, rows)
        twin.insert = insert  # type: ignore[method-assign]
        await sink.flush()
        assert calls == ["touchpoints", "dead_letters", "dead_letters", "dead_letters"]
        assert acks.done == [1]
    asyncio.run(scenario())


def test_a_deadline_gives_up_without_acknowledging() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        twin.failures.extend(ch_errors.ServerException("too many parts", code=252) for _ in range(10_000))
        sink, _ = make_sink(twin, retry_base_seconds=0.01, max_backoff_seconds=0.02)
        sink.add({"touchpoints": [touchpoint_row(1)]}, ack=acks.ack(1))
        started = time.monotonic()
        with pytest.raises(SinkUnavailable):
            await sink.flush(deadline=started + 0.2)
        assert time.monotonic() - started < 1.0
        assert acks.done == []
    asyncio.run(scenario())


def test_only_the_refused_rows_become_dead_letters() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        bad = {7, 42, 43}
        twin.poison = lambda table, row: table == "touchpoints" and int(str(row["event_id"])[4:]) in bad
        sink, metrics = make_sink(twin)
        for n in range(64):
            sink.add({"touchpoints": [touchpoint_row(n)]}, ack=acks.ack(n))
        await sink.flush()
        stored = {row["event_id"] for row in twin.tables["touchpoints"]}
        assert stored == {f"evt-{n:05d}" for n in range(64) if n not in bad}
        dead = twin.tables["dead_letters"]
        assert sorted(row["reason"] for row in dead) == ["sink_rejected"] * 3
        assert {row["topic"] for row in dead} == {"clickhouse.touchpoints"}
        assert all(any(f"evt-{n:05d}" in row["payload"] for n in bad) for row in dead)
        assert acks.done == list(range(64))
        assert sample(metrics, "cx_sink_rows_rejected_total", table="touchpoints") == 3
        # bisection: far fewer inserts than one per row
        assert twin.attempts < 40
    asyncio.run(scenario())


def test_ack_before_write_acknowledges_on_add_unsafe_negative_control() -> None:
    async def scenario() -> None:
        twin, acks = InMemoryWriter(), Acks()
        twin.failures.extend(ch_errors.NetworkError("down") for _ in range(10_000))
        sink, _ = make_sink(twin, ack_before_write=True)
        sink.add({"touchpoints": [touchpoint_row(1)]}, ack=acks.ack(1))
        await asyncio.sleep(0.01)
        assert acks.done == [1]  # acknowledged though nothing is stored: what the fault suite must catch
        assert not twin.tables["touchpoints"]
    asyncio.run(scenario())


def test_a_real_refused_connection_is_held_until_the_deadline() -> None:
    async def scenario() -> None:
        acks = Acks()
        target = ClickHouseTarget("127.0.0.1", free_port(), "cx", "default", "")
        metrics = Metrics.create(CollectorRegistry())
        sink = AckingSink(lambda: ClickHouseWriter(target), metrics, 100, 0.1,
                          retry_base_seconds=0.05, max_backoff_seconds=0.1)
        sink.add({"touchpoints": [touchpoint_row(1)]}, ack=acks.ack(1))
        with pytest.raises(SinkUnavailable):
            await sink.flush(deadline=time.monotonic() + 0.5)
        assert acks.done == []
        assert (metrics.registry.get_sample_value("cx_sink_failures_total", {"table": "touchpoints"}) or 0) >= 2
        sink.close()
    asyncio.run(scenario())
