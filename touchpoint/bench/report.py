"""The bench's output: one JSON document, a table for people, and one summary line for scripts.

The summary line's shape is a contract (issues 6 and 8): always the same keys in the same order,
``na`` for a figure the run could not produce (a skipped or failed contender).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from touchpoint.bench.figures import ratio
from touchpoint.bench.measure import ContenderResult

TABLE_COLUMNS = (
    ("contender", "name", "{}"),
    ("status", "status", "{}"),
    ("events/s", "events_per_s", "{:,.0f}"),
    ("window s", "window_s", "{:.2f}"),
    ("CPU s/1k ev", "cpu_s_per_1000", "{:.3f}"),
    ("CPU busy", "cpu_busy", "{:.0%}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
    ("procs", "processes", "{}"),
)


def ratios(results: Mapping[str, ContenderResult]) -> dict[str, float | None]:
    """Touchpoint (one worker) against each baseline: above 1.0 means Touchpoint is faster."""
    touchpoint = _rate(results, "touchpoint")
    return {
        f"ratio_{name}": _round(ratio(touchpoint, _rate(results, name)), 3)
        for name in ("floor", "naive", "ceiling", "quix", "domain")
    }


def build_report(
    results: Sequence[ContenderResult],
    latency: Mapping[str, Any] | None,
    state: Mapping[str, Any] | None,
    setup: Mapping[str, Any],
) -> dict[str, Any]:
    by_name = {result.name: result for result in results}
    return {
        "setup": dict(setup),
        "contenders": {result.name: result.to_dict() for result in results},
        "ratios": ratios(by_name),
        "latency": dict(latency) if latency is not None else None,
        "state_per_customer": dict(state) if state is not None else None,
    }


def summary_line(report: Mapping[str, Any]) -> str:
    contenders = report["contenders"]
    ratios_ = report["ratios"]
    latency = report.get("latency") or {}

    def rate(name: str) -> str:
        return _fmt(contenders.get(name, {}).get("events_per_s"), "{:.0f}")

    fields = [
        ("touchpoint", rate("touchpoint")),
        ("floor", rate("floor")),
        ("ratio_floor", _fmt(ratios_.get("ratio_floor"), "{:.2f}")),
        ("naive", rate("naive")),
        ("ratio_naive", _fmt(ratios_.get("ratio_naive"), "{:.2f}")),
        ("ceiling", rate("ceiling")),
        ("quix", rate("quix")),
        ("ratio_quix", _fmt(ratios_.get("ratio_quix"), "{:.2f}")),
        ("p99_clickhouse_s", _fmt(latency.get("p99_s"), "{:.3f}")),
        ("rss_mb", _fmt(contenders.get("touchpoint", {}).get("peak_rss_mb"), "{:.0f}")),
    ]
    return "bench: " + " ".join(f"{key}={value}" for key, value in fields)


def render(report: Mapping[str, Any]) -> str:
    """The table, the latency and state figures, then the summary line last."""
    rows = [[title for title, _, _ in TABLE_COLUMNS]]
    for result in report["contenders"].values():
        rows.append([_fmt(result.get(key), fmt) for _, key, fmt in TABLE_COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(width) if i > 1 else cell.ljust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for result in report["contenders"].values():
        if result.get("detail"):
            lines.append(f"  {result['name']}: {result['detail']}")
        if result.get("servers_busy"):
            lines.append(f"  {result['name']}: servers busy " + ", ".join(
                f"{name} {busy:.1%}" for name, busy in sorted(result["servers_busy"].items())))
        sink = result.get("observed")
        if sink and sink.get("clickhouse_inserts") and result.get("window_s") and result.get("window_events"):
            lines.append(
                f"  {result['name']}: {sink['clickhouse_inserts']:.0f} ClickHouse inserts, "
                f"{sink['clickhouse_rows'] / result['window_events']:.1f} rows per event, "
                f"{sink['clickhouse_insert_seconds']:.1f} s inserting "
                f"({sink['clickhouse_insert_seconds'] / result['window_s']:.0%} of the window)")
        if sink and sink.get("gc_pauses"):
            lines.append(f"  {result['name']}: {sink['gc_pauses']:.0f} garbage-collector pauses, "
                         f"{sink['gc_seconds']:.2f} s in all")
        for share in (result.get("profile") or [])[:10]:
            lines.append(f"  {result['name']} profile: {share['self']:6.1%} self, {share['total']:6.1%} total  "
                         f"{share['frame']}")
    lines.append("ratios (touchpoint / other): " + ", ".join(
        f"{key[6:]} {_fmt(value, '{:.2f}')}" for key, value in report["ratios"].items()))
    latency = report.get("latency")
    if latency:
        lines.append(
            f"event to ClickHouse at {_fmt(latency.get('offered_per_s'), '{:.0f}')} ev/s offered: "
            f"p50 {_fmt(latency.get('p50_s'), '{:.3f}')} s, p95 {_fmt(latency.get('p95_s'), '{:.3f}')} s, "
            f"p99 {_fmt(latency.get('p99_s'), '{:.3f}')} s ({latency.get('visible')}/{latency.get('sent')} visible)")
    state = report.get("state_per_customer")
    if state:
        lines.append(f"state per active customer: mean {state['mean_bytes']:.0f} B, max {state['max_bytes']} B "
                     f"over {state['customers']} customers")
    lines.append(summary_line(report))
    return "\n".join(lines)


def _rate(results: Mapping[str, ContenderResult], name: str) -> float | None:
    result = results.get(name)
    return result.events_per_s if result is not None else None


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "na"
    return fmt.format(value)
