"""Events rebuilt from ClickHouse ``touchpoints`` for ``touchpoint replay --from-clickhouse``."""

from __future__ import annotations

from collections.abc import Iterator

from sinks.clickhouse import connect
from touchpoint.ops.records import Record, contract_record, event_from_touchpoint_row
from touchpoint.settings import ClickHouseTarget

COLUMNS = ("event_id", "customer_key", "channel", "type", "occurred_at_ms", "dimension",
           "feedback_kind", "feedback_score", "value")


def clickhouse_records(target: ClickHouseTarget, since_ms: int, until_ms: int) -> Iterator[Record]:
    """The latest version of every touchpoint with ``since_ms <= occurred_at < until_ms``.

    The range is also applied to ``occurred_at`` (seconds), the partition key, so ClickHouse only
    reads the months it covers.
    """
    client = connect(target)
    try:
        rows = client.execute_iter(
            f"SELECT {', '.join(COLUMNS)} FROM {target.database}.touchpoints FINAL "
            "WHERE occurred_at >= toDateTime(%(since_s)s) AND occurred_at <= toDateTime(%(until_s)s) "
            "AND occurred_at_ms >= %(since)s AND occurred_at_ms < %(until)s",
            {"since": since_ms, "until": until_ms, "since_s": since_ms // 1000, "until_s": until_ms // 1000})
        for row in rows:
            yield contract_record(event_from_touchpoint_row(dict(zip(COLUMNS, row))))
    finally:
        client.disconnect()
