"""Channel and dimension health: sliding windows in event time, and the channel alert rules.

Rules are evaluated each time event time crosses an evaluation tick (not on a wall-clock timer),
so a replay of a day of history raises the same alerts, at the same event times, as the day
itself did. The windows hold what this worker processed: with several workers, each judges its
share of a channel (the rules' minimum sample sizes apply per worker).

At each tick the reported windows are also snapshotted (:func:`pipeline.channel_scores.channel_figures`)
for ClickHouse ``channel_scores`` and the window gauges; :meth:`ChannelHealth.take_figures` drains
them. Quiet evaluations judge alerts but take no snapshot, so rows stay one per tick.

A channel (or dimension value) that goes quiet while an alert on it fires is still evaluated:
once its alert window holds no touchpoint at all, the alert resolves (see
``pipeline.alerting.evaluate_channel``). If the whole stream stops, event time stops with it and
alerts stay as last judged unless the worker passes its wall-clock idle time to
``evaluate_quiet``, which then lets event time move on with the wall clock.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from pipeline.alerting import AlertEvent, RuleState, evaluate_channel, watches
from pipeline.channel_scores import ChannelFigure, channel_figures
from pipeline.config import AlertRule, ModelConfig
from pipeline.model import Event
from pipeline.scoring import Score, dimension_of, is_error, is_friction
from pipeline.windows import CHANNEL_TOTAL, ChannelWindows, WindowStats


# Snapshots kept for the timer at most; a replay crossing many ticks between two drains keeps
# the newest (each tick is a few hundred figures at most).
MAX_PENDING_FIGURES = 100_000


class ChannelHealth:
    def __init__(self, config: ModelConfig, evaluate_every_seconds: int = 60) -> None:
        self.config = config
        self.rules = tuple(rule for rule in config.alerts if rule.subject == "channel")
        windows = config.windows
        self.windows = ChannelWindows(windows.kept_seconds, windows.bucket_seconds, windows.dimension_max_tracked)
        self.states: dict[tuple[str, str], Mapping[str, RuleState]] = {}
        self._watching: dict[tuple[str, bool], tuple[AlertRule, ...]] = {}  # see _rules_for
        self._figures: list[ChannelFigure] = []
        self._refused: Counter[str] = Counter()  # per channel, touchpoints older than the windows
        self.figures_dropped = 0  # snapshots dropped because nobody drained them in time
        self._every_ms = evaluate_every_seconds * 1000
        self._next_tick_ms: int | None = None
        self._quiet_evaluated_ms: int | None = None

    def observe(self, event: Event, score: Score) -> list[AlertEvent]:
        """Count one touchpoint; returns the alert transitions due at this point of event time.

        The ticks this touchpoint moves event time past are judged first, without it: a window
        ending at a tick holds what happened up to the tick, and after a gap in the stream the
        ticks in the gap still see the touchpoints before it (which the new watermark evicts).
        """
        alerts: list[AlertEvent] = []
        while self._next_tick_ms is not None and event.occurred_at_ms >= self._next_tick_ms:
            alerts.extend(self.evaluate(self._next_tick_ms))
            self._snapshot(self._next_tick_ms)
            self._next_tick_ms += self._every_ms
        if not self.windows.add(event.channel, dimension_of(event), event.occurred_at_ms, score.value,
                                event.feedback, is_friction(score), is_error(event)):
            self._refused[event.channel] += 1
        if self._next_tick_ms is None:
            self._next_tick_ms = (event.occurred_at_ms // self._every_ms + 1) * self._every_ms
        return alerts

    def evaluate_quiet(self, idle_seconds: float = 0.0) -> list[AlertEvent]:
        """For a timer: judge the window at the watermark when event time has stopped moving.

        A live burst shorter than the evaluation interval would otherwise wait for the next event.
        ``idle_seconds`` is the wall-clock time since this worker last observed a touchpoint (the
        worker measures it; 0 for replays): while the whole stream is idle, event time is taken
        to move on with the wall clock, in whole buckets, so a firing alert whose window empties
        resolves as "quiet" even though no event comes to move event time.
        """
        at_ms = self._now_ms(idle_seconds)
        if at_ms is None or at_ms == self._quiet_evaluated_ms:
            return []
        self._quiet_evaluated_ms = at_ms
        return self.evaluate(at_ms)

    def evaluate(self, at_ms: int) -> list[AlertEvent]:
        """Judge every subject with touchpoints in the alert window, and every subject with
        remembered state. A subject with neither has nothing to judge (no value, nothing to
        resolve), so it is not evaluated at all: most kept subjects are quiet at most ticks; nor
        is one that no rule watches (it can have no state either)."""
        alerts: list[AlertEvent] = []
        window_seconds = self.config.windows.window_seconds
        for subject in sorted(set(self.windows.active(at_ms, window_seconds)) | set(self.states)):
            channel, dimension = subject
            rules = self._rules_for(channel, dimension)
            if not rules:
                continue  # no rule watches it (web page groups, app versions by default): no state either
            stats = self.windows.snapshot(channel, dimension, at_ms, window_seconds)
            states, fired = evaluate_channel(rules, self.states.get(subject, {}), channel, dimension, stats, at_ms)
            if states:
                self.states[subject] = states
            else:
                self.states.pop(subject, None)
            alerts.extend(fired)
        return alerts

    def take_refused(self) -> Counter[str]:
        """Per channel, the touchpoints the windows refused since the last call (too old to count
        in any window still kept: see ``ChannelWindows.add``)."""
        refused, self._refused = self._refused, Counter()
        return refused

    def take_figures(self) -> list[ChannelFigure]:
        """The snapshots taken since the last call, oldest first, for ``channel_report``."""
        figures, self._figures = self._figures, []
        return figures

    def figures_now(self, idle_seconds: float = 0.0) -> list[ChannelFigure]:
        """The reported windows ending now, for the gauges (empty before any event).

        Now is the watermark, moved on by ``idle_seconds`` as in :meth:`evaluate_quiet`: a stream
        that stopped has its channels drop out once their longest window is empty.
        """
        at_ms = self._now_ms(idle_seconds)
        if at_ms is None:
            return []
        windows = self.config.windows
        return channel_figures(self.windows, at_ms, windows.report_windows_seconds, windows.dimension_top_n)

    def channel_totals(self, idle_seconds: float = 0.0) -> dict[str, WindowStats]:
        """Current alert window per channel, for the gauges (now as in :meth:`figures_now`)."""
        at_ms = self._now_ms(idle_seconds)
        if at_ms is None:
            return {}
        return {
            channel: self.windows.snapshot(channel, CHANNEL_TOTAL, at_ms, self.config.windows.window_seconds)
            for channel in self.windows.channels()
        }

    def _rules_for(self, channel: str, dimension: str) -> tuple[AlertRule, ...]:
        """The rules that watch this subject, looked up once per channel and kind of subject
        (total or dimension value: all ``watches`` depends on), not at every subject and tick."""
        key = (channel, dimension == CHANNEL_TOTAL)
        rules = self._watching.get(key)
        if rules is None:
            rules = self._watching[key] = tuple(rule for rule in self.rules if watches(rule, channel, dimension))
        return rules

    def _now_ms(self, idle_seconds: float) -> int | None:
        """The watermark, moved on by the wall-clock idle time in whole buckets; None before any event."""
        watermark = self.windows.watermark_ms
        if watermark is None:
            return None
        bucket_ms = self.windows.bucket_seconds * 1000
        return watermark + int(max(idle_seconds, 0.0) * 1000) // bucket_ms * bucket_ms

    def _snapshot(self, at_ms: int) -> None:
        windows = self.config.windows
        figures = channel_figures(self.windows, at_ms, windows.report_windows_seconds, windows.dimension_top_n)
        self._figures.extend(figures)
        overflow = len(self._figures) - MAX_PENDING_FIGURES
        if overflow > 0:  # nobody drains (no timer wired): keep memory bounded, newest win
            del self._figures[:overflow]
            self.figures_dropped += overflow
