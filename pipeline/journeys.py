"""Journeys as a pure function of a customer's touchpoints in event time.

A journey is not built incrementally in arrival order: the customer state keeps the touchpoints
that late events may still move (as :class:`Segment` runs of one) and recomputes the journeys
from them, sorted by event time, with :func:`sessionize`. So the journeys do not depend on the
order in which touchpoints arrive within the allowed lateness, nor on whether an anonymous
history reached the customer before or after the customer's own touchpoints.

Touchpoints that no event within the lateness can move any more are folded into one segment per
journey (:func:`fold`), which keeps the state bounded without changing any journey.

Recomputing is only needed for a touchpoint that lands among the others: one that comes in
event-time order (nearly all of them) is appended where the recomputation would put it
(:func:`place`), without sorting and regrouping the state on every event.

A journey's id is derived from its earliest touchpoint's event id alone: it is deterministic, not
keyed by start time or by customer key (so it survives back-stitching), and it only changes when
an earlier touchpoint joins within the lateness, in which case the old id is recorded as merged
into the new one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from pipeline.config import JourneyConfig


def journey_id_for(first_event_id: str) -> str:
    """Named after the journey's earliest touchpoint only, so it survives growth and stitching."""
    digest = hashlib.blake2b(first_event_id.encode(), digest_size=10).hexdigest()
    return f"j-{digest}"


class Segment(NamedTuple):
    """A run of consecutive touchpoints of one journey, summarised; one touchpoint is a run of one.

    Runs of one keep their event id, so the journey they belong to can be changed (and recorded)
    when a late touchpoint splits or bridges journeys. Longer runs are the frozen head of a
    journey that nothing can move any more. A named tuple rather than a frozen dataclass: a few
    are built per event, and a frozen dataclass takes five times as long to build.
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
        return summarise((self, later), max_scores)


def summarise(segments: Sequence[Segment], max_scores: int) -> Segment:
    """Consecutive runs (in event-time order) as one: ``segments[0].then(segments[1]).then(...)``,
    in one pass without the runs in between (a journey read back from the state is summarised
    whole, up to ``unfolded_limit`` runs)."""
    first = segments[0]
    if len(segments) == 1:
        return first
    first_ms, first_event_id, last_ms, first_channel, last_channel, channels, switches, count, failed, outcome, \
        scores, _context = first
    for later in segments[1:]:
        switches += later.switches + (last_channel != later.first_channel)
        if later.last_ms >= last_ms:
            last_ms, last_channel = later.last_ms, later.last_channel
        known = channels
        for channel in later.channels:
            if channel not in known:
                channels += (channel,)
        count += later.count
        failed += later.failed
        outcome = outcome or later.outcome
        scores = (scores + later.scores)[-max_scores:]
    return Segment(first_ms, first_event_id, last_ms, first_channel, last_channel, channels,
                   switches, count, failed, outcome, scores)


@dataclass(frozen=True, slots=True)
class Journey:
    """A journey in the hot state: its segments in event-time order and the ids merged into it."""

    journey_id: str
    segments: tuple[Segment, ...]
    merged: tuple[str, ...] = ()  # ids of journeys that became part of this one (their rows say so)
    closed: bool = False  # its last row said closed
    # The summary for one ``max_scores``, memoised: the step reads every journey's summary on
    # every event, and folding all segments each time made that the hot spot. A function of the
    # segments, so not part of the value; carried over to the copies that keep the segments.
    _summary: tuple[int, Segment] | None = field(default=None, init=False, repr=False, compare=False)

    def summary(self, max_scores: int) -> Segment:
        memo = self._summary
        if memo is not None and memo[0] == max_scores:
            return memo[1]
        total = summarise(self.segments, max_scores)
        _memoise(self, max_scores, total)
        return total

    @property
    def touch_ids(self) -> tuple[str, ...]:
        """Event ids of the touchpoints that may still move to another journey."""
        return tuple(s.first_event_id for s in self.segments if s.count == 1)

    def then(self, segment: Segment, max_scores: int) -> Journey:
        """This journey with ``segment`` appended (it sorts after every segment): O(1) summary."""
        journey = Journey(self.journey_id, self.segments + (segment,), self.merged, self.closed)
        return _memoise(journey, max_scores, self.summary(max_scores).then(segment, max_scores))

    def with_closed(self, closed: bool) -> Journey:
        if closed == self.closed:
            return self
        return _carry_summary(Journey(self.journey_id, self.segments, self.merged, closed), self)


def _memoise(journey: Journey, max_scores: int, summary: Segment) -> Journey:
    """Seed the memo of a journey whose summary the caller already has (it is frozen otherwise)."""
    object.__setattr__(journey, "_summary", (max_scores, summary))
    return journey


def _carry_summary(journey: Journey, source: Journey) -> Journey:
    """``journey`` has the summary of ``source`` (same touchpoints, regrouped or folded)."""
    object.__setattr__(journey, "_summary", source._summary)
    return journey


def closes_at_ms(summary: Segment, rules: JourneyConfig) -> int:
    """The event time after which no touchpoint can join this journey.

    After a terminal outcome, the journey waits at most the allowed lateness (or its gap, if
    shorter) for touchpoints that belong to it, such as the survey that follows a purchase.
    """
    gap_ms = rules.gap_seconds(summary.last_channel) * 1000
    if summary.outcome:
        gap_ms = min(gap_ms, rules.allowed_lateness_seconds * 1000)
    return min(summary.last_ms + gap_ms, summary.first_ms + rules.max_duration_seconds * 1000)


def sessionize(segments: Iterable[Segment], rules: JourneyConfig) -> list[tuple[tuple[Segment, ...], Segment]]:
    """Cut a customer's segments, in event-time order, into journeys, each with its summary.

    A new journey starts when a segment begins after the running journey's closing time
    (:func:`closes_at_ms`: inactivity gap of the last channel, terminal outcome, maximum duration).
    The result is a function of the set of segments alone.
    """
    runs: list[tuple[tuple[Segment, ...], Segment]] = []
    running: Segment | None = None
    max_scores = rules.max_scored_touchpoints
    for segment in sorted(segments, key=lambda s: s.order):
        if running is not None and segment.first_ms <= closes_at_ms(running, rules):
            running = running.then(segment, max_scores)
            runs[-1] = (runs[-1][0] + (segment,), running)
        else:
            running = segment
            runs.append(((segment,), running))
    return runs


class Regrouping(NamedTuple):
    """The journeys after a change, and what changed for the rows (a named tuple: one per event)."""

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
    run_ids = [journey_id_for(run[0].first_event_id) for run, _ in runs]
    new_ids = set(run_ids)
    journeys: list[Journey] = []
    merged: dict[str, str] = {}
    moved: dict[str, str] = {}
    for (run, summary), journey_id in zip(runs, run_ids):
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
        journeys.append(_memoise(Journey(journey_id, run, tuple(aliases), closed), rules.max_scored_touchpoints, summary))
    return Regrouping(tuple(journeys), merged, moved)


class Placement(NamedTuple):
    """Where a new touchpoint goes, found before it is scored: its score depends on the
    touchpoint before it in its journey (a channel switch). :meth:`complete` puts it in.
    A named tuple: one per event."""

    previous: Segment | None  # the segment before the new touchpoint in its journey
    journeys: tuple[Journey, ...]  # in order: the journeys as they were; else regrouped with it unscored
    journey_index: int  # of its journey in the journeys after it is put in
    index: int  # of the touchpoint in its journey
    regrouped: Regrouping | None = None  # None when it is simply appended (in order)

    def complete(self, touch: Segment, max_scores: int) -> tuple[Regrouping, Journey]:
        """The journeys with the scored ``touch`` in its place, and the journey it is in."""
        if self.regrouped is None:
            return self._appended(touch, max_scores)
        journeys = list(self.journeys)
        old = journeys[self.journey_index]
        segments = old.segments[:self.index] + (touch,) + old.segments[self.index + 1:]
        journey = journeys[self.journey_index] = Journey(old.journey_id, segments, old.merged, old.closed)
        return Regrouping(tuple(journeys), self.regrouped.merged, self.regrouped.moved), journey

    def _appended(self, touch: Segment, max_scores: int) -> tuple[Regrouping, Journey]:
        if self.index:
            journey = self.journeys[-1].then(touch, max_scores)
            journeys = self.journeys[:-1] + (journey,)
        else:
            journey = Journey(journey_id_for(touch.first_event_id), (touch,))
            journeys = self.journeys + (journey,)
        return Regrouping(journeys, {}, {}), journey


def place(journeys: tuple[Journey, ...], touch: Segment, rules: JourneyConfig) -> Placement:
    """Where :func:`regroup` puts a new touchpoint; in O(1) when it comes in event-time order.

    A touchpoint that sorts after every segment of the journeys (the overwhelming case) leaves
    them as they are: they are already sessionized, and folding or evicting the oldest does not
    move a cut, so regrouping would rebuild them and put the touchpoint at the end of the last
    journey or in a new one after it, with nothing merged or moved. Anything else (an event
    landing among the others, an id the journeys already hold, a new journey whose id was merged
    away) is regrouped. Raises LookupError if regrouping leaves the touchpoint out (its id heads
    a folded run).
    """
    max_scores = rules.max_scored_touchpoints
    if not journeys:
        return Placement(None, journeys, 0, 0)
    last = journeys[-1]
    event_id = touch.first_event_id
    if touch.order > last.segments[-1].order and not any(
            s.first_event_id == event_id for journey in journeys for s in journey.segments):
        if touch.first_ms <= closes_at_ms(last.summary(max_scores), rules):
            return Placement(last.segments[-1], journeys, len(journeys) - 1, len(last.segments))
        journey_id = journey_id_for(event_id)
        if not any(journey_id in journey.merged for journey in journeys):
            return Placement(None, journeys, len(journeys), 0)
    regrouped = regroup(journeys, [touch], rules)
    journey_index, index = locate(regrouped.journeys, event_id)
    previous = regrouped.journeys[journey_index].segments[index - 1] if index else None
    return Placement(previous, regrouped.journeys, journey_index, index, regrouped)


def locate(journeys: Sequence[Journey], event_id: str) -> tuple[int, int]:
    """The index of the journey holding the event as a touchpoint of its own, and its index there."""
    for journey_index, journey in enumerate(journeys):
        for index, segment in enumerate(journey.segments):
            if segment.first_event_id == event_id and segment.count == 1:
                return journey_index, index
    raise LookupError(f"event {event_id} is not a touchpoint of the state")


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
    head = summarise(segments[:frozen + 1], max_scores)
    folded = Journey(journey.journey_id, (head,) + segments[frozen + 1:], journey.merged, journey.closed)
    return _carry_summary(folded, journey)
