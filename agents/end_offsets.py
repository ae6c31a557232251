"""End offsets checked against the log, for table recovery on a broker that under-reports them.

Why this exists: Faust recovers a table by reading its changelog partitions up to the end
offsets ``consumer.highwaters()`` returns when recovery starts. The local broker (Tansu 0.6)
answers ListOffsets (latest) with one past the *first* offset of a partition's last record
batch, not past its last record: after a batch of 10 records at offset 5 it says 6, not 15
(``tests/integration/test_end_offsets.py`` shows it). Recovery then stopped before the rest of
the last batch of every changelog partition, a restarted worker held customer states older than
the rows it had already stored, and replays met their events in another order: the fault
suite's residual of journeys disagreeing with their touchpoints (docs/reliability.md).

What it does: :meth:`agents.batching.BatchingConsumer.highwaters` passes the reported ends to
:func:`read_end_offsets`, which opens one group-less ``AIOKafkaConsumer`` on the worker's event
loop (no threads, no kafka-python), assigns the partitions whose reported end is above 0, seeks
each to ``reported - 1`` and fetches until every one of them has returned records. A fetch at
the first offset of a batch returns the whole batch, so the last record's offset + 1 is the true
end; the result is ``max(reported, last + 1)``. On a broker that reports ends correctly
(Apache Kafka, the compose stack) this reads the last record of each partition and changes
nothing.

Bounds, since it runs inside a rebalance: the whole read (bootstrap included) is limited to
``timeout`` seconds (:data:`READ_TIMEOUT_SECONDS`); past it, or on any client error, a warning is
logged and the partitions not yet read keep their reported ends (those read keep what was
found). The consumer is always stopped, in a task of its own bounded by
:data:`STOP_TIMEOUT_SECONDS` and shielded from the caller's cancellation (Faust cancels the
recovery step when another rebalance starts), so no consumer is left running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Mapping, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

K = TypeVar("K")

READ_TIMEOUT_SECONDS = 5.0  # the whole check, bootstrap included; then the reported ends stand
STOP_TIMEOUT_SECONDS = 5.0  # consumer.stop(); then it is abandoned with a warning
FETCH_ROUND_MS = 200  # one getmany round
FETCH_MAX_WAIT_MS = 100  # the broker holds an empty fetch this long (Tansu: the whole wait)

_stopping: set[asyncio.Task[None]] = set()  # stop tasks outliving a cancelled check


async def read_end_offsets(
    reported: Mapping[K, int | None],
    config: Mapping[str, Any],
    *,
    timeout: float = READ_TIMEOUT_SECONDS,
    consumer_factory: Callable[..., Any] = AIOKafkaConsumer,
) -> dict[K, int | None]:
    """``reported`` with each end moved past the last record actually in the partition.

    ``config``: AIOKafkaConsumer keyword arguments (``bootstrap_servers``, ``client_id``, the
    security options of :func:`touchpoint.security.aiokafka_config`); the keys of ``reported``
    are any ``(topic, partition)`` structs and are returned as given. Never raises a client
    error, and never takes much longer than ``timeout`` plus the consumer's stop."""
    ends = dict(reported)
    to_check = {TopicPartition(tp.topic, tp.partition): tp  # type: ignore[attr-defined]
                for tp, end in reported.items() if end}
    if not to_check:
        return ends
    started = time.monotonic()
    consumer = consumer_factory(
        **config, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        request_timeout_ms=max(1000, int(timeout * 1000)),
    )
    pending = set(to_check)
    try:
        await asyncio.wait_for(_read(consumer, to_check, ends, pending), timeout)
    except asyncio.TimeoutError:
        log.warning("end offsets: %d of %d changelog partition(s) not read within %.1f s; recovery "
                    "uses the broker's reported end for them: %s", len(pending), len(to_check), timeout,
                    ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending)))
    except Exception as exc:  # noqa: BLE001 - any client error: the reported ends stand
        log.warning("end offsets: could not read %d changelog partition(s) (%r); recovery uses the "
                    "broker's reported end for them", len(pending), exc)
    finally:
        stopping = asyncio.ensure_future(_stop(consumer))
        _stopping.add(stopping)
        stopping.add_done_callback(_stopping.discard)
        await asyncio.shield(stopping)
    moved = {tp: (reported[tp], ends[tp]) for tp in reported if ends[tp] != reported[tp]}
    if moved:
        log.info("end offsets: %d of %d changelog partition(s) end past the reported offset (%.2f s): %s",
                 len(moved), len(to_check), time.monotonic() - started,
                 ", ".join(f"{tp.topic}[{tp.partition}] {was}->{now}"  # type: ignore[attr-defined]
                           for tp, (was, now) in sorted(moved.items())))
    return ends


async def _read(consumer: Any, to_check: Mapping[TopicPartition, K], ends: dict[K, int | None],
                pending: set[TopicPartition]) -> None:
    """Fetch from ``reported - 1`` until every partition has returned records; ``ends`` and
    ``pending`` are updated as records arrive, so a timeout keeps what was found."""
    await consumer.start()
    consumer.assign(list(to_check))
    for tp, key in to_check.items():
        consumer.seek(tp, ends[key] - 1)  # type: ignore[operator]
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=FETCH_ROUND_MS)
        for tp, records in fetched.items():
            if records and tp in pending:
                key = to_check[tp]
                ends[key] = max(ends[key] or 0, records[-1].offset + 1)
                pending.discard(tp)
                consumer.pause(tp)  # read: no more fetches for it


async def _stop(consumer: Any) -> None:
    try:
        await asyncio.wait_for(consumer.stop(), STOP_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        log.warning("end offsets: the reading consumer did not stop within %.0f s; abandoned",
                    STOP_TIMEOUT_SECONDS)
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - stopping must not fail recovery
        log.warning("end offsets: stopping the reading consumer raised %r", exc)
