"""Seeded synthetic touchpoint traffic, with the ground truth to check the pipeline's results against.

Demos, integration tests and the benchmark all need traffic whose right answer is known in
advance: how many journeys each known customer has, which events are valid, who is scripted to be
unhappy, when a channel degraded. So the generator is pure (one ``random.Random(seed)``, no clock,
no I/O): the same arguments always give byte-identical messages, and the manifest describes them.

Journeys are predictable by construction: a session holds 1-8 touchpoints one to eight minutes
apart, sessions of one customer are at least three hours apart (far beyond the default inactivity
gaps of 15 to 60 minutes), and a terminal event (``purchase``, ``checkout``, resolved ``call_ended``) only
ever ends a session. Known customers carry ``customer_id`` on every event, so each of their
sessions is exactly one journey.

Everything that could look personal is obviously fictional: ids like ``cust-000042``, e-mail
addresses under ``example.invalid`` (RFC 2606) and UK phone numbers from Ofcom's drama range
``+44 7700 900000-900999``.
"""

from __future__ import annotations

import gc
import random
from bisect import bisect
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from itertools import accumulate
from operator import attrgetter
from typing import Any, Callable, Generic, Iterator, NamedTuple, TypeVar

from pipeline.model import CHANNELS, AttributeValue
from pipeline.wireformat import (
    ParsedSchema,
    encode_confluent,
    encode_json,
    encode_single_object,
    load_schema,
)

UNHAPPY_CUSTOMER = "cust-unhappy-001"
HAPPY_CUSTOMER = "cust-happy-001"
DEGRADED_CHANNEL = "web"
MESSAGES_PER_CUSTOMER = 8.4  # measured average, for callers that size a run by message count

TOPIC_SUFFIX: dict[str, str] = {"call": "calls", "web": "web", "store": "store", "app": "app"}
IDENTITY_TOPIC = "identity"
EVENT_SCHEMA_ID = 1
IDENTITY_LINK_SCHEMA_ID = 2
UNKNOWN_SCHEMA_ID = 9999

DEFECTS: tuple[str, ...] = (
    "not_json",
    "truncated_avro",
    "unknown_schema_id",
    "missing_event_id",
    "unknown_channel",
    "channel_mismatch",
    "future_timestamp",
    "oversized",
)
# One 200 KB message is enough to exercise the size limit; more would dominate the traffic volume.
_REPEATABLE_DEFECTS = tuple(d for d in DEFECTS if d != "oversized")
OVERSIZED_BYTES = 200 * 1024

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
SESSION_GAP_MS = 3 * HOUR_MS
MIN_SPAN_HOURS = 12.0
# Room before the first session so CRM identity links can precede their customer's first visit.
LEAD_IN_MS = 2 * HOUR_MS
DEGRADED_DURATION_MS = 6 * HOUR_MS
OUTAGE_BURST_MS = 10 * MINUTE_MS
OUTAGE_BURST_VISITORS = 60
_OUTAGE_ATTRIBUTES: dict[str, AttributeValue] = {"page": "/home", "error_code": 503}
MAX_TOUCHPOINTS_PER_SESSION = 8
# A sign-in position no session reaches: the whole session stays anonymous.
_NEVER_SIGNED_IN = MAX_TOUCHPOINTS_PER_SESSION
# Ofcom's drama range holds only 1000 numbers, and two customers must never share one.
PHONE_RANGE = 1000
YEAR_2200_MS = int(datetime(2200, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)

_JSON_SHARE = 0.80
_ISO_TIME_SHARE = 0.20  # of all messages; the rest of the JSON ones carry epoch milliseconds
_CONFLUENT_SHARE = 0.12  # the remaining 8 % are Avro single-object encoded

_QUEUES = ("billing", "orders", "tech_support", "returns", "general")
# URL paths: the pipeline groups web figures by the first path segment.
_PAGES = (
    "/home", "/search", "/product/sku-1042", "/product/sku-2210", "/product/sku-3381", "/cart",
    "/help/returns", "/help/delivery", "/account", "/orders",
)  # fmt: skip
_SCREENS = ("home", "search", "product", "basket", "orders", "account", "chat")
_BUGGY_APP_VERSION = "5.3.0"  # crashes three times as often, so a per-version alert has a cause
_GOOD_APP_VERSION = "5.2.1"
_STORES = tuple(f"store-{n:03d}" for n in range(1, 26))
_SERVER_ERRORS = (500, 502, 503, 504)
_FEEDBACK_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
_JUNK_PAYLOADS = (
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"customer_id=cust-000001&type=page_view",
    b'{"event_id": "ev-trunc',
    b"\xff\xfe\x00\x01 binary noise",
)

T = TypeVar("T")


class _Weighted(Generic[T]):
    """A weighted choice with its cumulative weights computed once (``random.choices`` redoes it)."""

    __slots__ = ("_options", "_cumulative", "_total")

    def __init__(self, *pairs: tuple[T, int]) -> None:
        self._options = tuple(option for option, _ in pairs)
        self._cumulative = tuple(accumulate(weight for _, weight in pairs))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        return self._options[bisect(self._cumulative, rng.random() * self._total)]


_KIND = _Weighted(("known", 55), ("web_login", 20), ("crm", 15), ("visitor", 10))
_SESSION_COUNT = _Weighted((1, 20), (2, 25), (3, 22), (4, 15), (5, 10), (6, 8))
_SHAPE: _Weighted[tuple[str, ...]] = _Weighted(
    (("web",), 24), (("app",), 16), (("call",), 18), (("store",), 12),
    (("web", "call"), 10), (("app", "call"), 5), (("web", "store"), 6), (("survey",), 9),
)  # fmt: skip
_CRM_SHAPE: _Weighted[tuple[str, ...]] = _Weighted((("call",), 5), (("store",), 5), (("call", "store"), 1))
_STORE_ONLY: _Weighted[tuple[str, ...]] = _Weighted((("store",), 1))
_VISITOR_SHAPE: _Weighted[tuple[str, ...]] = _Weighted((("web",), 3), (("app",), 1))
_WEB_STEP = _Weighted(("page_view", 6), ("search", 2), ("add_to_cart", 1))
_APP_VERSION = _Weighted(("5.1.4", 2), (_GOOD_APP_VERSION, 5), (_BUGGY_APP_VERSION, 3))
_FEEDBACK_KIND = _Weighted(("nps", 5), ("csat", 3), ("ces", 2))


@dataclass(frozen=True, slots=True)
class SyntheticMessage:
    """One Kafka record as it will be produced; ``defect`` names why an invalid one is invalid.

    ``occurred_at_ms`` places the message in the stream; for a defective message it is the time of
    the event it was corrupted from, not the (possibly absurd) time inside its bytes.
    """

    topic: str
    key: bytes | None
    value: bytes
    occurred_at_ms: int
    valid: bool
    event_id: str | None
    defect: str | None = None


@dataclass(frozen=True, slots=True)
class DegradedPeriod:
    """When and where the scripted outage happened, and how much traffic it touched."""

    channel: str
    start_ms: int
    end_ms: int
    events: int
    customers: int


@dataclass(slots=True)
class Manifest:
    """The ground truth of a scenario; ``journeys`` covers known customers only.

    Customers whose history is anonymous at first (web logins, CRM-linked callers) are listed in
    ``stitched`` with the identifiers that tie their anonymous touchpoints to them: their journey
    count depends on how stitching merges open journeys, so it is not promised here.
    """

    seed: int
    customers: int
    start_ms: int
    end_ms: int
    messages: int
    messages_by_topic: dict[str, int]
    valid_event_ids: dict[str, list[str]]
    identity_link_ids: list[str]
    malformed: int
    malformed_by_defect: dict[str, int]
    journeys: dict[str, int]
    unhappy_customers: list[str]
    happy_customer: str
    degraded: DegradedPeriod
    stitched: dict[str, dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Scenario:
    messages: list[SyntheticMessage]
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class _Customer:
    index: int
    kind: str  # known | web_login | crm | visitor
    customer_id: str | None
    mood: float  # baseline experience, 0 awful .. 1 delightful
    anonymous_id: str
    device_id: str
    email: str
    phone: str | None
    loyalty_id: str
    script: str | None = None  # unhappy | happy


class _Touch(NamedTuple):
    channel: str
    type: str
    attributes: dict[str, AttributeValue]
    feedback: tuple[str, int] | None = None
    value: float | None = None


class _Visit(NamedTuple):
    touches: list[_Touch]
    signed_in_from: int  # index of the first touchpoint that knows the customer


@dataclass(slots=True)
class _Draft:
    """An event before its id and wire format are chosen."""

    occurred_at_ms: int
    channel: str
    type: str
    customer_id: str | None
    identifiers: dict[str, str]
    attributes: dict[str, AttributeValue]
    feedback: tuple[str, int] | None
    value: float | None
    key: str | None
    owner: _Customer
    defect: str | None = None
    event_id: str = ""


@dataclass(slots=True)
class _Link:
    occurred_at_ms: int
    customer_id: str
    identifiers: dict[str, str]
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class _Timeline:
    start_ms: int
    end_ms: int

    @property
    def first_session_ms(self) -> int:
        return self.start_ms + LEAD_IN_MS

    @property
    def degraded_start_ms(self) -> int:
        return self.first_session_ms + int((self.end_ms - self.first_session_ms) * 0.45)

    @property
    def degraded_end_ms(self) -> int:
        return min(self.end_ms, self.degraded_start_ms + DEGRADED_DURATION_MS)


@dataclass(slots=True)
class _Plan:
    """Everything planned for the customers, before malformed copies and encoding."""

    drafts: list[_Draft] = field(default_factory=list)
    links: list[_Link] = field(default_factory=list)
    journeys: dict[str, int] = field(default_factory=dict)
    stitched: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Schemas:
    event: ParsedSchema
    link: ParsedSchema


def generate(
    customers: int,
    seed: int,
    start_ms: int,
    *,
    span_hours: float = 48.0,
    malformed_rate: float = 0.01,
) -> Scenario:
    """Traffic of ``customers`` customers (two of them scripted), all within ``span_hours`` of start.

    Every event time lies in ``[start_ms, start_ms + span_hours)``, so starting ``span_hours``
    before now never produces a valid event from the future. About :data:`MESSAGES_PER_CUSTOMER`
    messages per customer.
    """
    if customers < 2:
        raise ValueError("customers must be at least 2: the happy and unhappy scripts need them")
    if span_hours < MIN_SPAN_HOURS:
        raise ValueError(f"span_hours must be at least {MIN_SPAN_HOURS:g}")
    with _collector_paused():
        rng = random.Random(seed)
        timeline = _Timeline(start_ms, start_ms + int(span_hours * HOUR_MS))
        plan = _Plan()
        for person in _make_customers(rng, customers):
            _plan_customer(rng, person, timeline, plan)
        degraded = _degrade(rng, plan.drafts, timeline, customers)
        bad = _malformed_copies(rng, plan.drafts, malformed_rate)
        return _assemble(rng, seed, customers, plan, bad, degraded)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC: its full passes over the ~10 objects per message cost a third of the run.

    Nothing built here forms a reference cycle, so there is nothing for it to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _make_customers(rng: random.Random, count: int) -> list[_Customer]:
    people = [
        _customer(rng, 0, "known", UNHAPPY_CUSTOMER, 0.0, "unhappy"),
        _customer(rng, 1, "known", HAPPY_CUSTOMER, 1.0, "happy"),
    ]
    for index in range(2, count):
        kind = _KIND.pick(rng)
        customer_id = None if kind == "visitor" else f"cust-{index:06d}"
        people.append(_customer(rng, index, kind, customer_id, rng.betavariate(5, 2)))
    return people


def _customer(
    rng: random.Random,
    index: int,
    kind: str,
    customer_id: str | None,
    mood: float,
    script: str | None = None,
) -> _Customer:
    return _Customer(
        index=index,
        kind=kind,
        customer_id=customer_id,
        mood=mood,
        anonymous_id=_uuid(rng),
        device_id=f"dev-{rng.getrandbits(64):016x}",
        email=f"user{index:04d}@example.invalid",
        phone=f"+447700900{index:03d}" if index < PHONE_RANGE else None,
        loyalty_id=f"loy-{index:07d}",
        script=script,
    )


def _uuid(rng: random.Random) -> str:
    """A version-4-shaped id, as browsers' analytics cookies carry, drawn from the seeded RNG."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


# --- planning: visits, touchpoints, identities ------------------------------------------------


def _plan_customer(rng: random.Random, person: _Customer, timeline: _Timeline, plan: _Plan) -> None:
    visits = _visits_of(rng, person)
    offsets = [_offsets(rng, len(visit.touches)) for visit in visits]
    starts = _schedule(rng, [o[-1] for o in offsets], timeline.first_session_ms, timeline.end_ms - 1)
    for visit, visit_offsets, start in zip(visits, offsets, starts):
        plan.drafts.extend(_drafts(person, visit, [start + o for o in visit_offsets]))
    if person.kind == "known":
        plan.journeys[person.customer_id] = len(starts)
    _plan_identity(rng, person, starts[0], timeline, plan)


def _offsets(rng: random.Random, count: int) -> list[int]:
    """Touchpoints one to eight minutes apart: well inside the 30-minute inactivity gap."""
    offsets = [0]
    for _ in range(count - 1):
        offsets.append(offsets[-1] + rng.randint(MINUTE_MS, 8 * MINUTE_MS))
    return offsets


def _schedule(rng: random.Random, durations: list[int], first_ms: int, last_ms: int) -> list[int]:
    """Start times for sessions of these durations, in order, at least the session gap apart.

    The free time is split at random points, so sessions spread over the whole span yet the last
    one always ends by ``last_ms``; sessions that cannot fit at all are dropped from the end.
    """
    while len(durations) > 1 and _slack(durations, first_ms, last_ms) < 0:
        durations = durations[:-1]
    slack = max(0, _slack(durations, first_ms, last_ms))
    cuts = sorted(rng.randint(0, slack) for _ in durations)
    starts = []
    at, previous_cut = first_ms, 0
    for duration, cut in zip(durations, cuts):
        at += cut - previous_cut
        starts.append(at)
        at += duration + SESSION_GAP_MS
        previous_cut = cut
    return starts


def _slack(durations: list[int], first_ms: int, last_ms: int) -> int:
    return last_ms - first_ms - sum(durations) - SESSION_GAP_MS * (len(durations) - 1)


def _visits_of(rng: random.Random, person: _Customer) -> list[_Visit]:
    if person.script == "unhappy":
        return [_Visit(touches, 0) for touches in _unhappy_sessions(rng)]
    if person.script == "happy":
        return [_Visit(touches, 0) for touches in _happy_sessions(rng)]
    count = _SESSION_COUNT.pick(rng)
    if person.kind == "visitor":
        return [_Visit(_session(rng, _VISITOR_SHAPE, person), _NEVER_SIGNED_IN) for _ in range(min(count, 3))]
    if person.kind == "crm":
        # Without a phone number a CRM-only customer is recognised by the loyalty card alone.
        shapes = _CRM_SHAPE if person.phone else _STORE_ONLY
        return [_Visit(_session(rng, shapes, person), _NEVER_SIGNED_IN) for _ in range(count)]
    visits = [_Visit(_session(rng, _SHAPE, person), 0) for _ in range(count)]
    if person.kind == "web_login":
        return _login_visits(rng, person) + visits[1:]
    return visits


def _login_visits(rng: random.Random, person: _Customer) -> list[_Visit]:
    """An optional earlier anonymous visit, then a visit that signs in part-way through."""
    quality = _quality(rng, person)
    before = _web(rng, quality, last=False, count=rng.randint(1, 3))
    login = _Touch("web", "login", {"page": "/login", "load_ms": _load_ms(rng, quality)})
    after = _web(rng, quality, last=True, count=rng.randint(0, 3))
    visits = [_Visit(before + [login] + after, len(before))]
    if rng.random() < 0.5:
        visits.insert(0, _Visit(_web(rng, quality, last=False, count=rng.randint(1, 4)), _NEVER_SIGNED_IN))
    return visits


def _quality(rng: random.Random, person: _Customer) -> float:
    return min(1.0, max(0.0, rng.gauss(person.mood, 0.15)))


def _session(rng: random.Random, shapes: _Weighted[tuple[str, ...]], person: _Customer) -> list[_Touch]:
    """Touchpoints of one visit; only its last segment may end in a terminal outcome."""
    shape = shapes.pick(rng)
    quality = _quality(rng, person)
    touches: list[_Touch] = []
    for position, segment in enumerate(shape):
        touches += _SEGMENTS[segment](rng, quality, position == len(shape) - 1)
    return touches


def _web(rng: random.Random, quality: float, last: bool, count: int | None = None) -> list[_Touch]:
    count = rng.randint(1, 5) if count is None else count
    touches = [_page(rng, quality, _WEB_STEP.pick(rng), rng.choice(_PAGES)) for _ in range(count)]
    if last and count >= 2 and rng.random() < 0.2 + 0.4 * quality:
        touches[-1] = _checkout(rng, _load_ms(rng, quality))
    return touches


def _checkout(rng: random.Random, load_ms: int) -> _Touch:
    return _Touch("web", "checkout", {"page": "/checkout/payment", "load_ms": load_ms}, value=_money(rng))


def _page(rng: random.Random, quality: float, kind: str, page: str) -> _Touch:
    attributes: dict[str, AttributeValue] = {"page": page, "load_ms": _load_ms(rng, quality)}
    if rng.random() < 0.03 * (1.0 - quality):
        attributes["error_code"] = 404
    return _Touch("web", kind, attributes)


def _load_ms(rng: random.Random, quality: float) -> int:
    return int(rng.uniform(250, 900) * (1.0 + 2.0 * (1.0 - quality)))


def _calls(rng: random.Random, quality: float, last: bool) -> list[_Touch]:
    """One call, or a failed call followed by a second attempt (a repeat contact)."""
    touches = []
    if rng.random() < 0.2 + 0.3 * (1.0 - quality):
        touches.append(_call(rng, quality, may_resolve=False))
    touches.append(_call(rng, quality, may_resolve=last))
    return touches


def _call(rng: random.Random, quality: float, may_resolve: bool) -> _Touch:
    friction = (1.0 - quality) ** 2
    abandoned = rng.random() < 0.03 + 0.4 * friction
    transferred = not abandoned and rng.random() > 0.5 + 0.5 * quality
    return _Touch("call", "call_ended", {
        "queue": rng.choice(_QUEUES),
        "wait_seconds": int(rng.uniform(10, 90) + friction * rng.uniform(0, 1400)),
        "handle_seconds": 0 if abandoned else rng.randint(90, 900),
        "transfers": rng.randint(1, 3) if transferred else 0,
        "abandoned": abandoned,
        "resolved": may_resolve and not abandoned and rng.random() < 0.35 + 0.6 * quality,
    })  # fmt: skip


def _store(rng: random.Random, quality: float, last: bool) -> list[_Touch]:
    store_id = rng.choice(_STORES)
    wait = int(rng.uniform(10, 120) + (1.0 - quality) ** 2 * rng.uniform(0, 1500))
    touches = [_Touch("store", "store_visit", {"store_id": store_id, "wait_seconds": wait})]
    roll = rng.random()
    if roll < 0.12 + 0.2 * (1.0 - quality):
        touches.append(_Touch("store", "return", {"store_id": store_id}, value=_money(rng)))
    elif last and roll < 0.75:
        basket = _money(rng)
        touches.append(_Touch("store", "purchase", {"store_id": store_id, "basket_value": basket},
                              value=basket))  # fmt: skip
    return touches


def _app(rng: random.Random, quality: float, last: bool) -> list[_Touch]:
    version = _APP_VERSION.pick(rng)
    crash_rate = (0.02 + 0.25 * (1.0 - quality) ** 2) * (3 if version == _BUGGY_APP_VERSION else 1)
    touches = [_Touch("app", "app_open", {"screen": "home", "app_version": version})]
    for _ in range(rng.randint(0, 4)):
        attributes: dict[str, AttributeValue] = {"screen": rng.choice(_SCREENS), "app_version": version}
        if rng.random() < crash_rate:
            touches.append(_Touch("app", "app_crash", {**attributes, "crash": True}))
        else:
            touches.append(_Touch("app", "screen_view", attributes))
    if last and rng.random() < 0.15 + 0.3 * quality:
        touches.append(_Touch("app", "purchase", {"screen": "checkout", "app_version": version},
                              value=_money(rng)))  # fmt: skip
    return touches


def _survey(rng: random.Random, quality: float, last: bool) -> list[_Touch]:
    """A survey answered from an e-mail or in-app prompt, hours after the visit it rates."""
    kind = _FEEDBACK_KIND.pick(rng)
    low, high = _FEEDBACK_RANGES[kind]
    score = min(high, max(low, round(low + quality * (high - low) + rng.gauss(0, (high - low) / 8))))
    return [_Touch(rng.choice(("web", "app")), "survey", {}, feedback=(kind, score))]


def _money(rng: random.Random) -> float:
    return round(rng.uniform(8, 250), 2)


_SEGMENTS: dict[str, Callable[[random.Random, float, bool], list[_Touch]]] = {
    "web": _web,
    "call": _calls,
    "store": _store,
    "app": _app,
    "survey": _survey,
}


def _unhappy_sessions(rng: random.Random) -> list[list[_Touch]]:
    """Every touchpoint terrible: long waits, transfers, abandoned calls, crashes, NPS 0-2."""

    def bad_call(abandoned: bool) -> _Touch:
        return _Touch("call", "call_ended", {
            "queue": "billing",
            "wait_seconds": rng.randint(900, 2400),
            "handle_seconds": 0 if abandoned else rng.randint(900, 1800),
            "transfers": 0 if abandoned else rng.randint(2, 4),
            "abandoned": abandoned,
            "resolved": False,
        })  # fmt: skip

    def bad_page(page: str) -> _Touch:
        attributes = {"page": page, "load_ms": rng.randint(8000, 15000), "error_code": 500}
        return _Touch("web", "page_view", attributes)

    def app(kind: str) -> _Touch:
        attributes: dict[str, AttributeValue] = {"screen": "basket", "app_version": _BUGGY_APP_VERSION}
        return _Touch("app", kind, {**attributes, "crash": True} if kind == "app_crash" else attributes)

    def survey(channel: str) -> _Touch:
        return _Touch(channel, "survey", {}, feedback=("nps", rng.randint(0, 2)))

    long_queue = {"store_id": "store-001", "wait_seconds": rng.randint(900, 1800)}
    return [
        [app("app_open"), app("app_crash"), app("app_open"), app("app_crash")],
        [bad_page("/orders"), bad_page("/help/returns"), bad_call(abandoned=True), bad_call(abandoned=False)],
        [survey("web")],
        [_Touch("store", "store_visit", long_queue),
         _Touch("store", "return", {"store_id": "store-001"}, value=_money(rng))],
        [bad_call(abandoned=True), bad_call(abandoned=False), survey("call")],
        [survey("app")],
    ]  # fmt: skip


def _happy_sessions(rng: random.Random) -> list[list[_Touch]]:
    """Every touchpoint effortless: short waits, resolved first time, NPS 10, purchases."""

    def page(kind: str, name: str) -> _Touch:
        return _Touch("web", kind, {"page": name, "load_ms": rng.randint(200, 450)})

    def app(kind: str, screen: str) -> _Touch:
        value = _money(rng) if kind == "purchase" else None
        return _Touch("app", kind, {"screen": screen, "app_version": _GOOD_APP_VERSION}, value=value)

    basket = _money(rng)
    quick_call: dict[str, AttributeValue] = {
        "queue": "orders",
        "wait_seconds": rng.randint(5, 40),
        "handle_seconds": rng.randint(90, 240),
        "transfers": 0,
        "abandoned": False,
        "resolved": True,
    }
    return [
        [page("page_view", "/home"), page("page_view", "/product/sku-1042"), page("add_to_cart", "/cart"),
         _checkout(rng, rng.randint(200, 450))],
        [_Touch("web", "survey", {}, feedback=("nps", 10))],
        [_Touch("call", "call_ended", quick_call)],
        [_Touch("store", "store_visit", {"store_id": "store-002", "wait_seconds": rng.randint(10, 60)}),
         _Touch("store", "purchase", {"store_id": "store-002", "basket_value": basket}, value=basket)],
        [app("app_open", "home"), app("screen_view", "product"), app("purchase", "checkout")],
        [_Touch("app", "survey", {}, feedback=("csat", 5))],
        [_Touch("web", "survey", {}, feedback=("nps", 10))],
    ]  # fmt: skip


def _drafts(person: _Customer, visit: _Visit, times: list[int]) -> list[_Draft]:
    drafts = []
    for position, (touch, at) in enumerate(zip(visit.touches, times)):
        customer_id, identifiers, key = _identity(person, touch, position >= visit.signed_in_from)
        drafts.append(_Draft(at, touch.channel, touch.type, customer_id, identifiers, touch.attributes,
                             touch.feedback, touch.value, key, person))  # fmt: skip
    return drafts


def _identity(
    person: _Customer, touch: _Touch, signed_in: bool
) -> tuple[str | None, dict[str, str], str | None]:
    """Who the touchpoint names: the ids a real channel would see, and the message key."""
    if signed_in:
        identifiers = _channel_identifiers(person, touch.channel)
        if touch.type in ("login", "checkout"):
            identifiers["email"] = person.email
        if touch.type == "login":
            identifiers["device_id"] = person.device_id
        return person.customer_id, identifiers, person.customer_id
    if person.kind == "crm":
        return None, _channel_identifiers(person, touch.channel), None
    return None, {"anonymous_id": person.anonymous_id, "device_id": person.device_id}, person.anonymous_id


def _channel_identifiers(person: _Customer, channel: str) -> dict[str, str]:
    if channel == "web":
        return {"anonymous_id": person.anonymous_id}
    if channel == "app":
        return {"device_id": person.device_id}
    if channel == "call":
        return {"phone": person.phone} if person.phone else {}
    return {"loyalty_id": person.loyalty_id}


def _plan_identity(
    rng: random.Random, person: _Customer, first_start: int, timeline: _Timeline, plan: _Plan
) -> None:
    """CRM links precede the first visit they explain; some known customers are synced too."""
    if person.kind == "crm":
        identifiers = {"loyalty_id": person.loyalty_id}
        if person.phone:
            identifiers["phone"] = person.phone
        at = max(timeline.start_ms, first_start - rng.randint(5 * MINUTE_MS, LEAD_IN_MS))
        plan.links.append(_Link(at, person.customer_id, identifiers))
        plan.stitched[person.customer_id] = dict(identifiers)
    elif person.kind == "web_login":
        plan.stitched[person.customer_id] = {
            "anonymous_id": person.anonymous_id,
            "device_id": person.device_id,
        }
    elif person.kind == "known" and rng.random() < 0.2:
        at = rng.randint(timeline.start_ms, timeline.end_ms - 1)
        identifiers = {"loyalty_id": person.loyalty_id, "email": person.email}
        plan.links.append(_Link(at, person.customer_id, identifiers))


def _degrade(rng: random.Random, drafts: list[_Draft], timeline: _Timeline, customers: int) -> DegradedPeriod:
    """Slow pages and server errors for everyone on the web during the outage window.

    The happy customer is spared so that its script stays unambiguous; checkouts that went through
    and survey answers keep their normal attributes. An outage is also a burst: visitors arriving
    in its first ten minutes (one page view each, anonymous, every one failing) are what a 5-minute
    channel window sees.
    """
    start, end = timeline.degraded_start_ms, timeline.degraded_end_ms
    for index in range(max(OUTAGE_BURST_VISITORS, customers // 2)):
        visitor = _customer(rng, PHONE_RANGE + customers + index, "visitor", None, 0.5)
        drafts.append(_Draft(
            occurred_at_ms=start + rng.randrange(OUTAGE_BURST_MS),
            channel=DEGRADED_CHANNEL, type="page_view", customer_id=None,
            identifiers={"anonymous_id": visitor.anonymous_id}, attributes=dict(_OUTAGE_ATTRIBUTES),
            feedback=None, value=None, key=visitor.anonymous_id, owner=visitor,
        ))
    touched = 0
    owners: set[int] = set()
    for draft in drafts:
        if (draft.channel != DEGRADED_CHANNEL or not start <= draft.occurred_at_ms < end
                or draft.type in ("checkout", "survey") or draft.owner.script == "happy"):  # fmt: skip
            continue
        draft.attributes = {**draft.attributes, "load_ms": rng.randint(8000, 20000)}
        if rng.random() < 0.6:
            draft.attributes["error_code"] = rng.choice(_SERVER_ERRORS)
        touched += 1
        owners.add(draft.owner.index)
    return DegradedPeriod(DEGRADED_CHANNEL, start, end, touched, len(owners))


def outage_burst(seed: int, start_ms: int, visitors: int = OUTAGE_BURST_VISITORS,
                 span_ms: int = OUTAGE_BURST_MS) -> list[SyntheticMessage]:
    """A live outage: anonymous visitors whose page views all fail, within ``span_ms`` of start.

    For tests and demos of channel alerting on live traffic (event time close to now).
    """
    rng = random.Random(seed)
    messages = []
    for index in range(visitors):
        anonymous_id = _uuid(rng)
        at_ms = start_ms + index * span_ms // max(visitors, 1)
        record = {
            "event_id": f"outage-{seed}-{index:05d}", "occurred_at": at_ms, "channel": DEGRADED_CHANNEL,
            "type": "page_view", "identifiers": {"anonymous_id": anonymous_id},
            "attributes": dict(_OUTAGE_ATTRIBUTES),
        }
        messages.append(SyntheticMessage(TOPIC_SUFFIX[DEGRADED_CHANNEL], anonymous_id.encode(),
                                         encode_json(record), at_ms, True, record["event_id"]))
    return messages


def _malformed_copies(rng: random.Random, drafts: list[_Draft], rate: float) -> list[_Draft]:
    """Corrupted copies of real events, about ``rate`` of the traffic, every defect at least once."""
    count = max(len(DEFECTS), round(rate * len(drafts)))
    defects = list(DEFECTS) + [rng.choice(_REPEATABLE_DEFECTS) for _ in range(count - len(DEFECTS))]
    return [replace(rng.choice(drafts), defect=defect) for defect in defects]


# --- assembly: ids, wire formats, manifest ----------------------------------------------------


def _assemble(
    rng: random.Random,
    seed: int,
    customers: int,
    plan: _Plan,
    bad: list[_Draft],
    degraded: DegradedPeriod,
) -> Scenario:
    items: list[_Draft | _Link] = [*plan.drafts, *plan.links, *bad]
    items.sort(key=attrgetter("occurred_at_ms"))  # stable, so ties keep their planned order
    run = f"{rng.getrandbits(32):08x}"  # keeps ids of scenarios with different seeds apart
    schemas = _Schemas(load_schema("touchpoint_event"), load_schema("identity_link"))
    messages = []
    for number, item in enumerate(items):
        item.event_id = f"ev-{run}-{number:08d}"
        messages.append(_message(rng, item, schemas))
    return Scenario(messages, _manifest(seed, customers, messages, plan, degraded))


def _message(rng: random.Random, item: _Draft | _Link, schemas: _Schemas) -> SyntheticMessage:
    if isinstance(item, _Link):
        value = _encode(rng, _link_record(item), schemas.link, IDENTITY_LINK_SCHEMA_ID)
        return SyntheticMessage(IDENTITY_TOPIC, item.customer_id.encode(), value, item.occurred_at_ms, True,
                                item.event_id)  # fmt: skip
    key = item.key.encode() if item.key is not None else None
    topic = TOPIC_SUFFIX[item.channel]
    if item.defect is None:
        value = _encode(rng, _event_record(item), schemas.event, EVENT_SCHEMA_ID)
        return SyntheticMessage(topic, key, value, item.occurred_at_ms, True, item.event_id)
    value = _corrupt(rng, item, schemas.event)
    event_id = None if item.defect == "missing_event_id" else item.event_id
    return SyntheticMessage(topic, key, value, item.occurred_at_ms, False, event_id, item.defect)


def _encode(rng: random.Random, record: dict[str, Any], schema: ParsedSchema, schema_id: int) -> bytes:
    """Mostly JSON, some of it with ISO-8601 times; some Confluent-framed, some single-object Avro.

    JSON producers usually leave absent fields out rather than send nulls, so None fields are
    dropped from JSON; Avro needs every field.
    """
    roll = rng.random()
    if roll < _JSON_SHARE:
        compact = {name: value for name, value in record.items() if value is not None}
        if roll < _ISO_TIME_SHARE:
            compact["occurred_at"] = _iso(record["occurred_at"])
        return encode_json(compact)
    if roll < _JSON_SHARE + _CONFLUENT_SHARE:
        return encode_confluent(record, schema_id, schema)
    return encode_single_object(record, schema)


def _event_record(draft: _Draft) -> dict[str, Any]:
    """The Avro-shaped record: every field present, optional ones as None."""
    return {
        "event_id": draft.event_id,
        "occurred_at": draft.occurred_at_ms,
        "channel": draft.channel,
        "type": draft.type,
        "customer_id": draft.customer_id,
        "identifiers": draft.identifiers or None,
        "attributes": draft.attributes or None,
        "feedback": {"kind": draft.feedback[0], "score": draft.feedback[1]} if draft.feedback else None,
        "value": draft.value,
    }


def _link_record(link: _Link) -> dict[str, Any]:
    return {
        "event_id": link.event_id,
        "occurred_at": link.occurred_at_ms,
        "customer_id": link.customer_id,
        "identifiers": link.identifiers,
    }


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _corrupt(rng: random.Random, draft: _Draft, schema: ParsedSchema) -> bytes:
    record = _event_record(draft)
    defect = draft.defect
    if defect == "not_json":
        return rng.choice(_JUNK_PAYLOADS)
    if defect == "truncated_avro":
        framed = encode_confluent(record, EVENT_SCHEMA_ID, schema)
        return framed[: max(6, len(framed) // 2)]
    if defect == "unknown_schema_id":
        return encode_confluent(record, UNKNOWN_SCHEMA_ID, schema)
    compact = {name: value for name, value in record.items() if value is not None}
    if defect == "missing_event_id":
        del compact["event_id"]
    elif defect == "unknown_channel":
        compact["channel"] = "fax"
    elif defect == "channel_mismatch":
        compact["channel"] = rng.choice([c for c in CHANNELS if c != draft.channel])
    elif defect == "future_timestamp":
        compact["occurred_at"] = YEAR_2200_MS + draft.occurred_at_ms % (24 * HOUR_MS)
    elif defect == "oversized":
        compact["attributes"] = {**draft.attributes, "note": "x" * OVERSIZED_BYTES}
    return encode_json(compact)


def _manifest(
    seed: int, customers: int, messages: list[SyntheticMessage], plan: _Plan, degraded: DegradedPeriod
) -> Manifest:
    valid_ids: dict[str, list[str]] = {channel: [] for channel in CHANNELS}
    link_ids: list[str] = []
    by_topic: dict[str, int] = {}
    by_defect = {defect: 0 for defect in DEFECTS}
    channel_of_topic = {suffix: channel for channel, suffix in TOPIC_SUFFIX.items()}
    for message in messages:
        by_topic[message.topic] = by_topic.get(message.topic, 0) + 1
        if not message.valid:
            by_defect[message.defect] += 1
        elif message.topic == IDENTITY_TOPIC:
            link_ids.append(message.event_id)
        else:
            valid_ids[channel_of_topic[message.topic]].append(message.event_id)
    return Manifest(
        seed=seed,
        customers=customers,
        start_ms=messages[0].occurred_at_ms,
        end_ms=messages[-1].occurred_at_ms,
        messages=len(messages),
        messages_by_topic=by_topic,
        valid_event_ids=valid_ids,
        identity_link_ids=link_ids,
        malformed=sum(by_defect.values()),
        malformed_by_defect=by_defect,
        journeys=plan.journeys,
        unhappy_customers=[UNHAPPY_CUSTOMER],
        happy_customer=HAPPY_CUSTOMER,
        degraded=degraded,
        stitched=plan.stitched,
    )
