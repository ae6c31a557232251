"""The consumer's interleaving of topic-partitions: timestamp order, offset order kept per partition."""

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from agents.batching import in_stage_order, in_timestamp_order


@dataclass(frozen=True)
class Record:
    tp: str
    offset: int
    timestamp: float


def batch(tp: str, timestamps: list[float]) -> list[Record]:
    return [Record(tp, offset, ts) for offset, ts in enumerate(timestamps)]


def by_partition(record: Record) -> str:
    return record.tp


def test_backlogs_of_two_topics_are_interleaved_by_timestamp_in_runs() -> None:
    calls = batch("calls", [1.0, 2.0, 5.0, 6.0])
    web = batch("web", [3.0, 4.0, 7.0])
    runs = [(tp, [r.offset for r in run]) for tp, run in in_timestamp_order([calls, web], by_partition)]
    assert runs == [("calls", [0, 1]), ("web", [0, 1]), ("calls", [2, 3]), ("web", [2])]


def test_one_partition_is_one_run() -> None:
    only = batch("web", [3.0, 1.0, 2.0])
    assert [(tp, [r.offset for r in run]) for tp, run in in_timestamp_order([only], by_partition)] == [("web", [0, 1, 2])]


@given(st.lists(st.lists(st.floats(0, 100, allow_nan=False), max_size=20), min_size=1, max_size=5))
def test_every_record_once_and_each_partition_in_offset_order(timestamps: list[list[float]]) -> None:
    batches = [batch(f"tp{i}", ts) for i, ts in enumerate(timestamps) if ts]
    if not batches:
        return
    runs = list(in_timestamp_order(batches, by_partition))
    seen = [record for _, run in runs for record in run]
    assert sorted(seen, key=lambda r: (r.tp, r.offset)) == sorted((r for b in batches for r in b),
                                                                 key=lambda r: (r.tp, r.offset))
    for tp, run in runs:
        assert all(record.tp == tp for record in run)
    for b in batches:
        offsets = [r.offset for r in seen if r.tp == b[0].tp]
        assert offsets == sorted(offsets)


def test_runs_follow_the_given_key_across_topic_partitions() -> None:
    """The consumer cuts runs per stage: interleaved partitions of one stage stay one run."""
    stage = {"web-0": "ingest", "web-1": "ingest", "customers-0": "customers"}
    web0 = batch("web-0", [1.0, 3.0, 7.0])
    web1 = batch("web-1", [2.0, 4.0])
    customers = batch("customers-0", [5.0, 6.0])
    runs = [(key, [(r.tp, r.offset) for r in run])
            for key, run in in_timestamp_order([web0, web1, customers], lambda r: stage[r.tp])]
    assert runs == [
        ("ingest", [("web-0", 0), ("web-1", 0), ("web-0", 1), ("web-1", 1)]),
        ("customers", [("customers-0", 0), ("customers-0", 1)]),
        ("ingest", [("web-0", 2)]),
    ]


def test_unordered_stages_come_first_in_one_run_each_and_leave_the_others_runs_whole() -> None:
    """Resolve's records between ingest and customer records no longer cut their runs."""
    stage = {"web-0": "ingest", "identifiers-0": "resolve", "identifiers-1": "resolve", "customers-0": "customers"}
    web = batch("web-0", [1.0, 3.0])
    identifiers0 = batch("identifiers-0", [2.0, 6.0])
    identifiers1 = batch("identifiers-1", [0.5])
    customers = batch("customers-0", [4.0, 5.0])
    runs = [(key, [(r.tp, r.offset) for r in run])
            for key, run in in_stage_order([web, identifiers0, customers, identifiers1], lambda r: stage[r.tp],
                                           frozenset({"resolve"}))]
    assert runs == [
        ("resolve", [("identifiers-0", 0), ("identifiers-0", 1), ("identifiers-1", 0)]),
        ("ingest", [("web-0", 0), ("web-0", 1)]),
        ("customers", [("customers-0", 0), ("customers-0", 1)]),
    ]
    only_resolve = list(in_stage_order([identifiers1], lambda r: stage[r.tp], frozenset({"resolve"})))
    assert [(key, len(run)) for key, run in only_resolve] == [("resolve", 1)]
