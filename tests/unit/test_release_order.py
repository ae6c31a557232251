"""Held records are handed over in time order across partitions read in separate fetches."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from agents.release_order import release_bound, take_until


@dataclass(frozen=True)
class Record:
    partition: str
    offset: int
    timestamp: int


def ts(record: Record) -> float:
    return record.timestamp


def test_the_bound_is_the_last_record_fetched_from_the_partitions_behind() -> None:
    assert release_bound([(False, 5.0), (False, None)]) == math.inf  # all caught up: live traffic flows
    assert release_bound([(True, 30.0), (False, 10.0), (True, 20.0)]) == 20.0
    assert release_bound([(True, None), (True, 20.0)]) == -math.inf  # behind, nothing fetched yet


def test_a_backlog_read_partition_by_partition_comes_out_in_time_order() -> None:
    # The case of docs/reliability.md: the store backlog (10:58) arrives a fetch before the web
    # backlog (10:39-10:53) of the same customer.
    store = [Record("store", 0, 1058)]
    web = [Record("web", 0, 1039), Record("web", 1, 1041), Record("web", 2, 1053), Record("web", 3, 1101)]
    held = {"store": list(store), "web": []}
    # first fetch: only the store records; web is behind and nothing of it was fetched
    assert take_until(held, release_bound([(False, 1058), (True, None)]), ts) == []
    held["web"] = list(web[:3])  # second fetch: web up to 10:53, more to come
    first = take_until(held, release_bound([(False, 1058), (True, 1053)]), ts)
    assert [r for part in first for r in part] == web[:3]
    held["web"].append(web[3])  # third fetch: web caught up
    second = take_until(held, release_bound([(False, 1058), (False, 1101)]), ts)
    assert list(heapq.merge(*second, key=ts)) == [store[0], web[3]]
    assert held == {"store": [], "web": []}


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50)), max_size=60), st.integers(-1, 60))
def test_taking_keeps_offset_order_and_loses_nothing(items: list[tuple[str, int]], bound: int) -> None:
    held: dict[str, list[Record]] = {"a": [], "b": [], "c": []}
    for partition, timestamp in items:
        part = held[partition]
        previous = part[-1].timestamp if part else 0
        part.append(Record(partition, len(part), max(previous, timestamp)))  # each partition in time order
    before = {p: list(records) for p, records in held.items()}
    taken = take_until(held, bound, ts)
    for part in taken:
        assert all(r.timestamp <= bound for r in part)
        partition = part[0].partition
        assert before[partition] == part + held[partition]  # a prefix, in offset order
    for partition, rest in held.items():
        assert all(r.timestamp > bound for r in rest)
        assert len(rest) + sum(len(p) for p in taken if p[0].partition == partition) == len(before[partition])
