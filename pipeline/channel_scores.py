"""Channel and dimension figures as ClickHouse ``channel_scores`` rows and gauge values.

:class:`pipeline.channel_health.ChannelHealth` takes a snapshot of every reported window at each
evaluation tick of event time (:func:`channel_figures`); the worker drains them on a timer and
turns them into rows, and the current figures into gauge values, with :func:`channel_report`.
Snapshots are taken in event time, so a replay in event-time order writes the same rows as the
live run did. A row holds what had arrived when event time crossed its window end: a late
touchpoint counts in the windows that end after its arrival, not in rows already written.

Bounded by construction: per channel, the total, the top N dimension values and "(other)", for
each configured window length. No customer identifier ever reaches a row or a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from pipeline.config import DIMENSION_BY_CHANNEL
from pipeline.windows import CHANNEL_TOTAL, ChannelWindows, WindowStats

Row = dict[str, Any]
# (channel, dimension, window label): one gauge series; dimension "" is the channel total.
SeriesKey = tuple[str, str, str]


class ChannelFigure(NamedTuple):
    """One window of one channel (dimension "") or dimension value, ending at ``window_end_ms``.

    A tuple: dozens are made at every minute of event time, thousands a second in a replay."""

    channel: str
    dimension: str
    window_seconds: int
    window_end_ms: int
    stats: WindowStats


@dataclass(frozen=True, slots=True)
class ChannelReport:
    """What the worker writes: rows for ``channel_scores`` and the latest value of each series."""

    rows: list[Row]
    gauges: Mapping[SeriesKey, WindowStats]


def window_label(seconds: int) -> str:
    """A window length as a short, stable label value: 300 -> "5m", 3600 -> "1h", 90 -> "90s"."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def channel_figures(windows: ChannelWindows, at_ms: int, window_sizes: Sequence[int],
                    top_n: int) -> list[ChannelFigure]:
    """Every channel with touchpoints in the longest of these windows: its total and its top N
    values plus "(other)", per size. A channel quiet for all of them has no figures, so a gap in
    the stream (a replay jumping a weekend) writes no empty rows; within the longest window a
    shorter one may show volume 0, which is how a channel going quiet shows."""
    figures: list[ChannelFigure] = []
    longest = max(window_sizes, default=0)
    for channel in windows.channels():
        if not windows.snapshot(channel, CHANNEL_TOTAL, at_ms, longest).volume:
            continue
        for size in window_sizes:
            total = windows.snapshot(channel, CHANNEL_TOTAL, at_ms, size)
            figures.append(ChannelFigure(channel, CHANNEL_TOTAL, size, at_ms, total))
            figures.extend(
                ChannelFigure(channel, dimension, size, at_ms, stats)
                for dimension, stats in windows.top_values(channel, at_ms, size, top_n)
            )
    return figures


def channel_report(ticks: Iterable[ChannelFigure], version: int,
                   current: Iterable[ChannelFigure] = ()) -> ChannelReport:
    """Rows for the figures snapshotted at ticks; gauge values from the ``current`` figures.

    The worker calls it on a timer with ``health.take_figures()`` and ``health.figures_now()``:
    rows stay one per minute of event time, while the gauges follow the watermark. ``version``
    orders rewrites of the same window end (a replay after a restart writes it again): pass
    something that grows, such as the wall-clock time in milliseconds.
    """
    rows = [channel_score_row(figure, version) for figure in ticks]
    gauges = {(figure.channel, figure.dimension, window_label(figure.window_seconds)): figure.stats
              for figure in current}
    return ChannelReport(rows, gauges)


def channel_score_row(figure: ChannelFigure, version: int) -> Row:
    """A ``channel_scores`` row; columns are named for BI (see schemas/clickhouse/0003)."""
    stats = figure.stats
    end_ms = figure.window_end_ms
    return {
        "window_start": (end_ms - figure.window_seconds * 1000) // 1000,
        "window_end": end_ms // 1000,
        "window_end_ms": end_ms,
        "window_seconds": figure.window_seconds,
        "channel": figure.channel,
        "dimension_name": DIMENSION_BY_CHANNEL.get(figure.channel, "") if figure.dimension else "",
        "dimension": figure.dimension,
        "volume": stats.volume,
        "mean_score": stats.mean_score,
        "nps": stats.nps,
        "nps_responses": stats.nps_responses,
        "mean_csat": stats.mean_csat,
        "csat_responses": stats.csat_responses,
        "mean_ces": stats.mean_ces,
        "ces_responses": stats.ces_responses,
        "friction_rate": stats.friction_rate,
        "error_rate": stats.error_rate,
        "version": version,
    }
