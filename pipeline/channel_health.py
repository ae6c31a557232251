"""Channel and dimension health: sliding windows in event time, and the channel alert rules.

Rules are evaluated each time event time crosses an evaluation tick (not on a wall-clock timer),
so a replay of a day of history raises the same alerts, at the same event times, as the day
itself did. The windows hold what this worker processed: with several workers, each judges its
share of a channel (the rules' minimum sample sizes apply per worker).
"""

from __future__ import annotations

from typing import Mapping

from pipeline.alerting import AlertEvent, RuleState, evaluate_channel
from pipeline.config import ModelConfig
from pipeline.model import Event
from pipeline.scoring import Score, dimension_of, is_error, is_friction
from pipeline.windows import CHANNEL_TOTAL, ChannelWindows, WindowStats


class ChannelHealth:
    def __init__(self, config: ModelConfig, evaluate_every_seconds: int = 60) -> None:
        self.config = config
        self.rules = tuple(rule for rule in config.alerts if rule.subject == "channel")
        self.windows = ChannelWindows(config.windows.window_seconds, config.windows.bucket_seconds)
        self.states: dict[tuple[str, str], Mapping[str, RuleState]] = {}
        self._every_ms = evaluate_every_seconds * 1000
        self._next_tick_ms: int | None = None
        self._quiet_evaluated_ms: int | None = None

    def observe(self, event: Event, score: Score) -> list[AlertEvent]:
        """Count one touchpoint; returns the alert transitions due at this point of event time."""
        self.windows.add(event.channel, dimension_of(event), event.occurred_at_ms, score.value,
                         event.feedback, is_friction(score), is_error(event))
        watermark = self.windows.watermark_ms
        if watermark is None:
            return []
        if self._next_tick_ms is None:
            self._next_tick_ms = (watermark // self._every_ms + 1) * self._every_ms
            return []
        alerts: list[AlertEvent] = []
        while watermark >= self._next_tick_ms:
            alerts.extend(self.evaluate(self._next_tick_ms))
            self._next_tick_ms += self._every_ms
        return alerts

    def evaluate_quiet(self) -> list[AlertEvent]:
        """For a timer: judge the window at the watermark when event time has stopped moving.

        A live burst shorter than the evaluation interval would otherwise wait for the next event.
        """
        watermark = self.windows.watermark_ms
        if watermark is None or watermark == self._quiet_evaluated_ms:
            return []
        self._quiet_evaluated_ms = watermark
        return self.evaluate(watermark)

    def evaluate(self, at_ms: int) -> list[AlertEvent]:
        alerts: list[AlertEvent] = []
        for channel, dimension in self.windows.subjects():
            stats = self.windows.snapshot(channel, dimension, at_ms)
            subject = (channel, dimension)
            self.states[subject], fired = evaluate_channel(
                self.rules, self.states.get(subject, {}), channel, dimension, stats, at_ms)
            alerts.extend(fired)
        return alerts

    def channel_totals(self) -> dict[str, WindowStats]:
        """Current window per channel, for the gauges."""
        watermark = self.windows.watermark_ms
        if watermark is None:
            return {}
        return {
            channel: self.windows.snapshot(channel, CHANNEL_TOTAL, watermark)
            for channel, dimension in self.windows.subjects()
            if dimension == CHANNEL_TOTAL
        }
