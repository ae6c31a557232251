"""Writing rows to ClickHouse: columnar batch inserts, errors sorted by code, capped retries.

The writer sits behind the small :class:`RowWriter` interface so the pipeline and its tests can
use :class:`InMemoryWriter`, its twin; both pass the same contract tests. Rows are plain dicts
whose keys are the table's columns (see ``TABLE_COLUMNS``, mirrored from ``schemas/clickhouse``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from typing import Any, Callable, Mapping, Protocol, Sequence

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from touchpoint.settings import ClickHouseTarget

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "touchpoints": (
        "event_id", "customer_key", "journey_id", "channel", "type", "occurred_at",
        "occurred_at_ms", "dimension", "score", "component_names", "component_points",
        "feedback_kind", "feedback_score", "value", "friction", "late", "version",
    ),
    "journeys": (
        "journey_id", "customer_key", "started_at", "ended_at", "started_at_ms", "ended_at_ms",
        "channels", "channel_switches", "touchpoint_count", "duration_seconds", "status",
        "outcome", "score", "component_names", "component_points", "version",
    ),
    "customer_scores": (
        "customer_key", "as_of", "as_of_ms", "score", "last_touchpoint_score", "touchpoints",
        "at_risk", "version",
    ),
    "alerts": (
        "alert_id", "rule", "severity", "state", "subject_kind", "channel", "dimension",
        "customer_key", "value", "threshold", "occurred_at", "occurred_at_ms", "details",
        "version",
    ),
    "identity_links": (
        "identifier_type", "identifier_value", "anonymous_key", "customer_key", "decision",
        "reason", "event_id", "occurred_at", "version",
    ),
    "dead_letters": (
        "topic", "partition", "offset", "reason", "step", "detail", "key", "payload",
        "received_at",
    ),
}

# Server error codes worth retrying: the server is busy, starting, or a network hop failed.
RETRIABLE_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica temporarily read-only)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
})


class SinkError(RuntimeError):
    """An insert that cannot succeed by retrying: the rows or the schema are wrong."""


def is_retriable(exc: BaseException) -> bool:
    if isinstance(exc, (ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError)):
        return True
    if isinstance(exc, ch_errors.ServerException):
        return exc.code in RETRIABLE_CODES
    return False


class RowWriter(Protocol):
    def insert(self, table: str, rows: Sequence[Row]) -> None: ...


def to_columns(table: str, rows: Sequence[Row]) -> list[list[Any]]:
    """Rows to columns: clickhouse-driver's columnar insert is several times faster."""
    return [[row[column] for row in rows] for column in TABLE_COLUMNS[table]]


class ClickHouseWriter:
    """A blocking writer for one thread; the agents call it from an executor."""

    def __init__(
        self,
        target: ClickHouseTarget,
        max_attempts: int = 8,
        max_backoff_seconds: float = 30.0,
        on_retry: Callable[[str, BaseException, int], None] | None = None,
    ) -> None:
        self.target = target
        self.max_attempts = max_attempts
        self.max_backoff_seconds = max_backoff_seconds
        self.on_retry = on_retry
        self.client = connect(target)

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        columns = TABLE_COLUMNS[table]
        query = f"INSERT INTO {self.target.database}.{table} ({', '.join(columns)}) VALUES"
        data = to_columns(table, rows)
        attempt = 0
        while True:
            attempt += 1
            try:
                self.client.execute(query, data, columnar=True, types_check=False)
                return
            except Exception as exc:
                if not is_retriable(exc):
                    raise SinkError(f"insert into {table} failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
                if self.on_retry:
                    self.on_retry(table, exc, attempt)
                if attempt >= self.max_attempts:
                    raise
                delay = min(self.max_backoff_seconds, 0.2 * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                log.warning("clickhouse insert into %s failed (%s), retry %d in %.1f s",
                            table, type(exc).__name__, attempt, delay)
                self.client.disconnect()
                time.sleep(delay)


class InMemoryWriter:
    """The writer's twin for tests of the pipeline without a server."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.fail_next: BaseException | None = None

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        if table not in TABLE_COLUMNS:
            raise SinkError(f"unknown table {table}")
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        for row in rows:
            missing = set(TABLE_COLUMNS[table]) - set(row)
            if missing:
                raise SinkError(f"row for {table} lacks {sorted(missing)}")
            self.tables[table].append(dict(row))


def connect(target: ClickHouseTarget, database: str | None = None) -> Client:
    """A client that refuses settings the server does not know instead of ignoring them."""
    return Client(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database=database if database is not None else target.database,
        secure=target.secure,
        settings_is_important=True,
        connect_timeout=5,
        send_receive_timeout=60,
        client_name="touchpoint",
    )
