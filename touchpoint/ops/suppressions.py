"""The suppression list in ClickHouse (table ``suppressions``, migration 0004): load and add.

The check itself is pure (``pipeline.suppression``); this is the I/O around it. Workers call
:func:`load_suppression_list` at start and every :data:`REFRESH_SECONDS` while running, so an
erasure done by ``touchpoint forget`` holds on a live worker within that time.
"""

from __future__ import annotations

from collections.abc import Iterable

from clickhouse_driver import Client

from pipeline.suppression import SuppressionList, suppression_token
from sinks.clickhouse import connect
from touchpoint.settings import ClickHouseTarget

REFRESH_SECONDS = 30.0


def load_suppression_list(target: ClickHouseTarget) -> SuppressionList:
    """Every erased key's digest (blocking: run it in an executor from async code)."""
    client = connect(target)
    try:
        return read_suppression_list(client, target.database)
    finally:
        client.disconnect()


def read_suppression_list(client: Client, database: str) -> SuppressionList:
    return SuppressionList.of(token for (token,) in client.execute(f"SELECT DISTINCT token FROM {database}.suppressions"))


def add_suppressions(client: Client, database: str, entries: Iterable[tuple[str, str]]) -> int:
    """Store ``(kind, key)`` entries as digests; returns how many were written."""
    rows = sorted({(suppression_token(kind, key), kind) for kind, key in entries})
    if rows:
        client.execute(f"INSERT INTO {database}.suppressions (token, kind) VALUES", rows)
    return len(rows)
