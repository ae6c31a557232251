"""Journeys as a pure function of a customer's touchpoints in event time.

A journey is not built incrementally in arrival order: the customer state keeps the touchpoints
that late events may still move (as :class:`Segment` runs of one) and recomputes the journeys
from them, sorted by event time, with :func:`sessionize`. So the journeys do not depend on the
order in which touchpoints arrive within the allowed lateness, nor on whether an anonymous
history reached the customer before or after the customer's own touchpoints.

Touchpoints that no event within the lateness can move any more are folded into one segment per
journey (:func:`fold`), which keeps the state bounded without changing any journey.

A journey's id is derived from its earliest touchpoint's event id alone: it is deterministic, not
keyed by start time or by customer key (so it survives back-stitching), and it only changes when
an earlier touchpoint joins within the lateness, in which case the old id is recorded as merged
into the new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from pipeline.config import JourneyConfig


def journey_id_for(first_event_id: str) -> str:
    """Named after the journey's earliest touchpoint only, so it survives growth and stitching."""
    digest = hashlib.blake2b(first_event_id.encode(), digest_size=10).hexdigest()
    return f"j-{digest}"


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of consecutive touchpoints of one journey, summarised; one touchpoint is a run of one.

    Runs of one keep their event id, so the journey they belong to can be changed (and recorded)
    when a late touchpoint splits or bridges journeys. Longer runs are the frozen head of a
    journey that nothing can move any more.
    """

    first_ms: int
    first_event_id: str
    last_ms: int
    first_channel: str
    last_channel: str
    channels: tuple[str, ...]
    switches: int
    count: int
    failed: int
    outcome: str  # the first terminal outcome in the run, "" if none
    scores: tuple[float, ...]  # the most recent touchpoint scores, at most max_scored_touchpoints
    # A run of one: the context its score was computed with (bit 0 repeat contact, bit 1 channel
    # switch), so a replayed event's touchpoint row can be written again with the same score.
    context: int = 0

    @classmethod
    def touch(cls, at_ms: int, event_id: str, channel: str, score: float, outcome: str, failed: bool,
              context: int = 0) -> Segment:
        return cls(at_ms, event_id, at_ms, channel, channel, (channel,), 0, 1, int(failed), outcome, (score,), context)

    @property
    def order(self) -> tuple[int, str]:
        return (self.first_ms, self.first_event_id)

    def then(self, later: Segment, max_scores: int) -> Segment:
        """This run followed by ``later`` in event time."""
        last = later if later.last_ms >= self.last_ms else self
        return Segment(
            first_ms=self.first_ms,
            first_event_id=self.first_event_id,
            last_ms=last.last_ms,
            first_channel=self.first_channel,
            last_channel=last.last_channel,
            channels=self.channels + tuple(c for c in later.channels if c not in self.channels),
            switches=self.switches + later.switches + int(self.last_channel != later.first_channel),
            count=self.count + later.count,
            failed=self.failed + later.failed,
            outcome=self.outcome or later.outcome,
            scores=(self.scores + later.scores)[-max_scores:],
        )


@dataclass(frozen=True, slots=True)
class Journey:
    """A journey in the hot state: its segments in event-time order and the ids merged into it."""

    journey_id: str
    segments: tuple[Segment, ...]
    merged: tuple[str, ...] = ()  # ids of journeys that became part of this one (their rows say so)
    closed: bool = False  # its last row said closed

    def summary(self, max_scores: int) -> Segment:
        total = self.segments[0]
        for segment in self.segments[1:]:
            total = total.then(segment, max_scores)
        return total

    @property
    def touch_ids(self) -> tuple[str, ...]:
        """Event ids of the touchpoints that may still move to another journey."""
        return tuple(s.first_event_id for s in self.segments if s.count == 1)


def closes_at_ms(summary: Segment, rules: JourneyConfig) -> int:
    """The event time after which no touchpoint can join this journey.

    After a terminal outcome, the journey waits at most the allowed lateness (or its gap, if
    shorter) for touchpoints that belong to it, such as the survey that follows a purchase.
    """
    gap_ms = rules.gap_seconds(summary.last_channel) * 1000
    if summary.outcome:
        gap_ms = min(gap_ms, rules.allowed_lateness_seconds * 1000)
    return min(summary.last_ms + gap_ms, summary.first_ms + rules.max_duration_seconds * 1000)


def sessionize(segments: Iterable[Segment], rules: JourneyConfig) -> list[tuple[Segment, ...]]:
    """Cut a customer's segments, in event-time order, into journeys.

    A new journey starts when a segment begins after the running journey's closing time
    (:func:`closes_at_ms`: inactivity gap of the last channel, terminal outcome, maximum duration).
    The result is a function of the set of segments alone.
    """
    runs: list[tuple[Segment, ...]] = []
    running: Segment | None = None
    max_scores = rules.max_scored_touchpoints
    for segment in sorted(segments, key=lambda s: s.order):
        if running is not None and segment.first_ms <= closes_at_ms(running, rules):
            runs[-1] += (segment,)
            running = running.then(segment, max_scores)
        else:
            runs.append((segment,))
            running = segment
    return runs


@dataclass(frozen=True, slots=True)
class Regrouping:
    """The journeys after a change, and what changed for the rows."""

    journeys: tuple[Journey, ...]
    merged: dict[str, str]  # journey id that disappeared (or was merged into one) -> its survivor
    moved: dict[str, str]  # event id of a touchpoint -> its new journey id


def regroup(previous: Sequence[Journey], added: Sequence[Segment], rules: JourneyConfig) -> Regrouping:
    """Recompute journeys from the previous ones plus new segments, tracking merges and moves.

    A journey that disappears is recorded as merged into the journey that now holds its earliest
    touchpoint; the ids merged into it follow it, so a chain of merges never leaves an orphan.
    """
    owner: dict[str, str] = {}  # event id of a run's first touchpoint -> journey it was in
    for journey in previous:
        for segment in journey.segments:
            owner[segment.first_event_id] = journey.journey_id
    by_id = {journey.journey_id: journey for journey in previous}
    pool = {s.first_event_id: s for j in previous for s in j.segments}
    for segment in added:
        pool.setdefault(segment.first_event_id, segment)
    runs = sessionize(pool.values(), rules)
    new_ids = {journey_id_for(run[0].first_event_id) for run in runs}
    journeys: list[Journey] = []
    merged: dict[str, str] = {}
    moved: dict[str, str] = {}
    for run in runs:
        journey_id = journey_id_for(run[0].first_event_id)
        sources = dict.fromkeys(owner[s.first_event_id] for s in run if s.first_event_id in owner)
        aliases: list[str] = list(by_id[journey_id].merged) if journey_id in by_id else []
        for source in sources:
            if source != journey_id and source not in new_ids:
                for alias in (source,) + by_id[source].merged:
                    if alias in new_ids:
                        continue
                    merged[alias] = journey_id
                    aliases.append(alias)
        for segment in run:
            before = owner.get(segment.first_event_id)
            if before is not None and before != journey_id and segment.count == 1:
                moved[segment.first_event_id] = journey_id
        closed = journey_id in by_id and by_id[journey_id].closed
        # An id merged away earlier that heads a journey again (a late outcome split it off) is
        # no longer an alias: its own row is current again.
        aliases = [alias for alias in dict.fromkeys(aliases) if alias not in new_ids]
        journeys.append(Journey(journey_id, run, tuple(aliases), closed))
    return Regrouping(tuple(journeys), merged, moved)


def fold(journey: Journey, horizon_ms: int, unfolded_limit: int, max_scores: int) -> Journey:
    """Fold the touchpoints that no event within the lateness can move any more.

    Every event still to come is at or after ``horizon_ms`` (watermark minus lateness), so a
    segment whose successor starts before the horizon can neither be split from the journey nor
    have a touchpoint inserted after it: the leading such segments and their successor become one.
    Beyond ``unfolded_limit`` runs of one (a customer sending a flood within the lateness), the
    oldest are folded too; a late touchpoint landing among those is still counted in the journey,
    but could no longer split it there.
    """
    segments = journey.segments
    frozen = 0
    while frozen + 1 < len(segments) and segments[frozen + 1].first_ms < horizon_ms:
        frozen += 1
    frozen = max(frozen, len(segments) - unfolded_limit - 1)
    if frozen == 0:
        return journey
    head = segments[0]
    for segment in segments[1:frozen + 1]:
        head = head.then(segment, max_scores)
    return replace(journey, segments=(head,) + segments[frozen + 1:])
