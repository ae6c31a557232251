"""Table writes that become durable only after the rows they explain are stored.

A Faust table write goes to its changelog at once. If the worker then dies before the batch's
rows reach ClickHouse, the recovered state already contains events whose rows were never written:
the replay sees them as duplicates and the rows derived from them (a score point, a journey's
version, an identity decision) are lost. So the hot path *stages* its writes here: reads see the
staged value at once, and the writes reach the table (and its changelog) from the batch's
acknowledgement, which the sink calls after the insert succeeded. A crash before that replays the
events from the last durable state, and the same rows are computed again.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping


class StagedTable:
    def __init__(self, table: Any) -> None:
        self.table = table
        self._pending: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        return self.table.get(key)

    def stage(self, writes: Mapping[bytes, bytes | None]) -> Callable[[], None]:
        """Make ``writes`` visible now; the returned callable makes them durable (None deletes)."""
        writes = dict(writes)
        pending = self._pending
        pending.update(writes)
        table = self.table

        def apply() -> None:
            for key, value in writes.items():
                if value is None:
                    if key in table:
                        del table[key]
                else:
                    table[key] = value
                if key in pending and pending[key] is value:  # not staged again since
                    del pending[key]
        return apply

    def abandon(self) -> None:
        """Partitions were let go: unstored writes are recomputed by whoever owns them next."""
        self._pending.clear()

    def items(self) -> list[tuple[bytes, bytes]]:
        """Durable entries overlaid with staged ones (for scans after a rebalance)."""
        merged = dict(self.table.items())
        for key, value in self._pending.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return list(merged.items())
