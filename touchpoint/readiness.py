"""Whether a worker should receive traffic, answered by ``/readyz`` next to ``/metrics``.

A worker is ready when it owns partitions, its ClickHouse sink is healthy (the last write
succeeded, or nothing is waiting to be written), and it is not shutting down. The worker updates
this object from its rebalance callbacks, its sink and its shutdown hook; the HTTP server only
reads it, from another thread, hence the lock.
"""

from __future__ import annotations

import threading
from typing import Any


class Readiness:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions = 0
        self._last_write_ok = True
        self._pending_rows = 0
        self._shutting_down = False

    def partitions_assigned(self, count: int) -> None:
        """After each rebalance: how many partitions this worker now owns (0 after a revoke)."""
        with self._lock:
            self._partitions = count

    def write_finished(self, ok: bool, pending_rows: int) -> None:
        """After each ClickHouse flush attempt: whether it succeeded and how many rows still wait."""
        with self._lock:
            self._last_write_ok = ok
            self._pending_rows = pending_rows

    def shutting_down(self) -> None:
        """On SIGTERM, before the final flush: stop receiving traffic while draining."""
        with self._lock:
            self._shutting_down = True

    def check(self) -> tuple[bool, list[str]]:
        """``(ready, reasons it is not)``; the reasons are shown on ``/readyz`` and by doctor."""
        with self._lock:
            reasons = []
            if self._shutting_down:
                reasons.append("shutting down")
            if self._partitions == 0:
                reasons.append("no partitions assigned yet (joining the consumer group or rebalancing)")
            if not self._last_write_ok and self._pending_rows > 0:
                reasons.append(f"the last ClickHouse write failed and {self._pending_rows} rows are waiting")
            return not reasons, reasons


def follow_app(app: Any, readiness: Readiness) -> None:
    """Keep ``readiness`` in step with a Faust app's rebalances and shutdown (its own signals).

    The sink's health cannot be seen from here: the worker reports each flush with
    :meth:`Readiness.write_finished`.
    """

    @app.on_partitions_revoked.connect
    async def revoked(sender: Any, revoked: Any, **_: Any) -> None:
        readiness.partitions_assigned(0)

    @app.on_partitions_assigned.connect
    async def assigned(sender: Any, assigned: Any, **_: Any) -> None:
        readiness.partitions_assigned(len(assigned))

    @app.on_before_shutdown.connect
    async def stopping(sender: Any, **_: Any) -> None:
        readiness.shutting_down()
