"""Which fetched records may be handed over now, so that a backlog read in chunks keeps time order.

After a restart a worker reads every topic-partition's backlog, but the client hands it over in
fetches of at most a few thousand records, from whichever partitions it has ready: one fetch
could bring a customer's store visit at 10:58 and the next one the same customer's web visits
from 10:39 to 10:53, on another topic. Applied in that order, the web visits no longer joined the
journey they had joined live; a replay mixed the two computations, and journeys disagreed with
their touchpoints after faults (docs/reliability.md).

So the consumer holds what it fetched and hands over only the records no later than the last
record fetched from every partition that is still behind (the broker has records after the last
one fetched): whatever such a partition brings next is at least that late, as producers (and
Touchpoint's own forwarding, which keeps the source timestamps) write in time order. A partition
that is caught up does not hold anything back, so live traffic is not delayed; and nothing is
held longer than a bound, as Kafka Streams waits at most ``max.task.idle.ms`` for a task's
partitions with no data buffered; nor more than a few fetches' worth, or a worker reading a
backlog would pull it all into memory while it waits.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable, Hashable, Iterable, Mapping, TypeVar

K = TypeVar("K", bound=Hashable)
M = TypeVar("M")

# The longest a fetched record waits for a partition behind it (Kafka Streams' max.task.idle.ms),
# and the most records held: past either, everything held is handed over.
MAX_HOLD_SECONDS = 0.5
MAX_HELD_RECORDS = 10_000


def release_bound(behind: Iterable[tuple[bool, float | None]]) -> float:
    """The latest timestamp that may be handed over, from each partition's (behind, timestamp of
    its last fetched record): infinite when none is behind, minus infinite when one that is
    behind has not been fetched from yet."""
    bound = math.inf
    for is_behind, last_timestamp in behind:
        if is_behind:
            bound = min(bound, -math.inf if last_timestamp is None else last_timestamp)
    return bound


def take_until(held: Mapping[K, list[M]], bound: float, timestamp: Callable[[M], float]) -> list[list[M]]:
    """Cut each partition's held records where their timestamps pass ``bound``, by bisection (a
    partition's records are in time order as produced; where they are not, the cut is still a
    prefix, so offset order is kept); returns the non-empty prefixes, one list per partition."""
    taken = []
    for records in held.values():
        cut = bisect.bisect_right(records, bound, key=timestamp)
        if cut:
            taken.append(records[:cut])
            del records[:cut]
    return taken
