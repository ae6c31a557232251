"""channel_scores on a real ClickHouse 18.16: migration 0003 replaces the view, rows round-trip."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from pipeline.channel_scores import channel_figures, channel_report
from pipeline.model import Feedback
from pipeline.windows import OTHER, ChannelWindows
from sinks.clickhouse import ClickHouseWriter
from sinks.migrations import available, migrate
from touchpoint.harness import clickhouse_client
from touchpoint.settings import Settings

T0 = 1_700_000_000_000


def _report(version: int, extra_detractor: bool = False):
    windows = ChannelWindows(3600, 10, max_tracked_values=10)
    for i in range(6):
        windows.add("call", "billing", T0 + i * 1000, 40.0, Feedback("nps", 3), True, False)
    windows.add("call", "sales", T0, 90.0, Feedback("csat", 5), False, False)
    windows.add("call", "", T0, 70.0, None, False, False)
    if extra_detractor:
        windows.add("call", "sales", T0 + 1000, 10.0, Feedback("nps", 0), True, False)
    return channel_report(channel_figures(windows, T0 + 60_000, (300, 3600), top_n=1), version)


def test_migration_0003_replaces_the_view_with_a_table_and_rows_round_trip(settings: Settings) -> None:
    target = settings.clickhouse
    migrate(target)
    client = clickhouse_client(settings)
    try:
        engine = client.execute(
            "SELECT engine FROM system.tables WHERE database = %(db)s AND name = 'channel_scores'",
            {"db": target.database})
        assert engine == [("ReplacingMergeTree",)]
        assert migrate(target) == []  # applied once
        (migration,) = [m for m in available() if m.version == 3]
        for statement in migration.statements(target.database):  # a re-run after a partial failure
            client.execute(statement)

        writer = ClickHouseWriter(target)
        writer.insert("channel_scores", _report(version=1).rows)
        writer.insert("channel_scores", _report(version=2, extra_detractor=True).rows)  # a late event
        rows = client.execute(
            f"SELECT window_seconds, dimension_name, dimension, volume, nps, mean_csat, version "
            f"FROM {target.database}.channel_scores FINAL WHERE window_seconds = 300 ORDER BY dimension")
    finally:
        client.disconnect()
    by_dimension = {row[2]: row for row in rows}
    assert set(by_dimension) == {"", "billing", OTHER}
    total, billing, other = by_dimension[""], by_dimension["billing"], by_dimension[OTHER]
    assert total[1:4] == ("", "", 9) and total[6] == 2  # the rewrite with the late event won
    assert billing[1:5] == ("queue", "billing", 6, -100.0)
    assert other[3] == 3 and other[5] == 5.0  # two sales calls and the queue-less call
    assert other[4] == -100.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in billing)


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "touchpoint.json"


def test_every_clickhouse_panel_of_the_dashboard_runs_on_clickhouse_18(settings: Settings) -> None:
    """Grafana's macros expanded as its ClickHouse plugin does; cx. pointed at the test database."""
    migrate(settings.clickhouse)
    database = settings.clickhouse.database
    ClickHouseWriter(settings.clickhouse).insert("channel_scores", _report(version=1).rows)
    panels = [panel for panel in json.loads(DASHBOARD.read_text())["panels"]
              if panel.get("datasource", {}).get("type") == "grafana-clickhouse-datasource"]
    assert panels
    client = clickhouse_client(settings)
    try:
        for panel in panels:
            for target in panel["targets"]:
                sql = re.sub(r"\$__timeFilter\((\w+)\)",
                             r"\1 >= toDateTime(1699990000) AND \1 <= toDateTime(1700010000)", target["rawSql"])
                sql = sql.replace("cx.", f"{database}.")
                rows = client.execute(sql)
                if "channel_scores" in sql:
                    assert rows, panel["title"]  # the written window is found by the panel
    finally:
        client.disconnect()
