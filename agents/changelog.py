"""A Faust table written the way ``Table.__setitem__`` writes it, without its per-write machinery.

A table write in Faust sets the value in the store and sends it to the changelog through
``Topic.send_soon``: the key and value serializers looked up in the registry, the partitioner
run (it builds the topic's partition set twice), a ``FutureMessage`` queued in the producer
buffer, then aiokafka's ``send`` with its own metadata lookup. On the bench that was 8% of a
worker's time, for one write per customer per batch. Touchpoint's tables hold raw bytes under
the same murmur2 partitioner, so this writer sets the store entry and appends the same record to
the changelog's partition through an :class:`agents.outbox.Outbox`. The changelog's contents
are identical, so Faust's recovery reads it back as before; with the memory store nothing else
in Faust's write path applies (no key TTLs, no persisted offsets, no transactions).

The outbox's builders must be submitted (``await outbox.send()``) before the offsets whose state
they carry are acknowledged: Faust flushes its producer before it commits, and that flush only
sees submitted batches.
"""

from __future__ import annotations

from typing import Any, Iterable

from agents.outbox import Outbox

# The key of the tombstones that end each changelog partition before a commit (see
# Outbox.mark_ends): no table holds it, so recovery deletes nothing when it applies one.
END_MARKER_KEY = b"\x00touchpoint:changelog-end"


class TableWriter:
    """The subset of a Faust table :class:`agents.staged_table.StagedTable` uses."""

    def __init__(self, table: Any, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.topic = table.changelog_topic.get_topic_name()

    def get(self, key: bytes) -> bytes | None:
        return self.table.get(key)

    def __contains__(self, key: bytes) -> bool:
        return key in self.table

    def keys(self) -> Iterable[bytes]:
        return self.table.keys()

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self.outbox.add(self.topic, key, value, None)

    def __delitem__(self, key: bytes) -> None:
        del self.table.data[key]
        self.outbox.add(self.topic, key, None, None)  # a tombstone, as Faust writes one
