"""The CX model configuration: scoring weights, journey rules, channel windows and alert rules.

One YAML file (the documented default is ``touchpoint/defaults/model.yaml``) is read once at
start-up into frozen dataclasses and handed down. Validation is strict on purpose: a mistyped
weight would otherwise change every score silently, so an unknown key, a missing key or a value out
of range stops the service with an error naming the key path and what was expected.

Dataclass fields are named exactly like their YAML keys, so most sections are read generically from
the field types; a field's ``limits`` metadata says which numbers it accepts (default: >= 0).
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.model import CHANNELS, AttributeValue, Event

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")  # least severe first
FEEDBACK_KINDS: tuple[str, ...] = ("nps", "csat", "ces")
# The attribute each channel is broken down by in channel windows and channel alert rules.
DIMENSION_BY_CHANNEL: Mapping[str, str] = {
    "call": "queue",
    "web": "page_group",
    "store": "store_id",
    "app": "app_version",
}
# The outcome of a journey closed by its inactivity gap or maximum duration, not by a terminal event.
INACTIVE_OUTCOME = "inactive"


class ConfigError(ValueError):
    """The model configuration is invalid; the message starts with the offending key path."""


def _limits(lo: float | None = 0, hi: float | None = None) -> Any:
    """A field whose number must lie within [lo, hi]; None leaves that side open."""
    return field(metadata={"limits": (lo, hi)})


# -- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackScale:
    """A survey scale mapped linearly onto 0-100: ``worst`` gives 0 points, ``best`` 100."""

    worst: int = _limits(None)
    best: int = _limits(None)


@dataclass(frozen=True, slots=True)
class WaitScoring:
    """A queue wait: free up to the threshold, then pro rata per minute, capped."""

    threshold_seconds: float
    penalty_points_per_minute: float
    max_penalty_points: float


@dataclass(frozen=True, slots=True)
class CallScoring:
    wait: WaitScoring
    transfer_penalty_points: float
    transfers_max_penalty_points: float
    abandoned_penalty_points: float
    unresolved_penalty_points: float
    resolved_bonus_points: float


@dataclass(frozen=True, slots=True)
class WebScoring:
    error_penalty_points: float
    slow_load_threshold_ms: float
    slow_load_penalty_points: float
    checkout_abandoned_types: tuple[str, ...]
    checkout_abandoned_penalty_points: float


@dataclass(frozen=True, slots=True)
class AppScoring:
    crash_penalty_points: float
    low_rating_max_stars: float = _limits(1, 5)
    low_rating_penalty_points: float


@dataclass(frozen=True, slots=True)
class StoreScoring:
    wait: WaitScoring
    return_types: tuple[str, ...]
    return_penalty_points: float


@dataclass(frozen=True, slots=True)
class JourneyScoring:
    """How touchpoint scores combine into a journey score (see ``ScoringModel.score_journey``)."""

    last_touchpoint_weight: float = _limits(1)
    worst_touchpoint_weight: float = _limits(1)
    channel_switch_penalty_points: float
    channel_switches_max_penalty_points: float
    outcome_points: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    feedback_weight: float = _limits(0, 1)
    feedback_scales: Mapping[str, FeedbackScale]
    base_points: float = _limits(0, 100)
    purchase_types: tuple[str, ...]
    purchase_bonus_points: float
    repeat_contact_window_seconds: int = _limits(1)
    repeat_contact_penalty_points: float
    channel_switch_penalty_points: float
    call: CallScoring
    web: WebScoring
    app: AppScoring
    store: StoreScoring
    journey: JourneyScoring


# -- customers, journeys, windows ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerConfig:
    half_life_seconds: int = _limits(1)
    at_risk_threshold: float = _limits(0, 100)
    change_window_seconds: int = _limits(1)  # the rolling score's change is measured over this


@dataclass(frozen=True, slots=True)
class TerminalOutcome:
    """An event that closes its journey with an outcome, e.g. a call that ended resolved."""

    type: str
    outcome: str
    attributes: Mapping[str, AttributeValue]

    def matches(self, event: Event) -> bool:
        # Compared as text, case-insensitively: producers send `true`, "true" or "TRUE" alike.
        return event.type == self.type and all(
            key in event.attributes and _text(event.attributes[key]) == _text(expected)
            for key, expected in self.attributes.items()
        )


def _text(value: AttributeValue) -> str:
    return str(value).strip().lower()


@dataclass(frozen=True, slots=True)
class JourneyConfig:
    inactivity_gap_seconds: int = _limits(1)
    channel_inactivity_gap_seconds: Mapping[str, int]
    terminal_outcomes: tuple[TerminalOutcome, ...]
    max_duration_seconds: int = _limits(1)
    allowed_lateness_seconds: int
    max_scored_touchpoints: int = _limits(1)

    def gap_seconds(self, channel: str) -> int:
        """The gap after a touchpoint on this channel that closes the journey."""
        return self.channel_inactivity_gap_seconds.get(channel, self.inactivity_gap_seconds)

    def terminal_outcome(self, event: Event) -> str | None:
        """The outcome this event closes its journey with (first matching rule), if any."""
        return next((rule.outcome for rule in self.terminal_outcomes if rule.matches(event)), None)

    @property
    def outcomes(self) -> frozenset[str]:
        return frozenset(rule.outcome for rule in self.terminal_outcomes) | {INACTIVE_OUTCOME}


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    """Guard rails for one identifier type (``identity.types.<type>`` in the model file)."""

    max_customers: int | None  # distinct customers that may claim it within window_seconds
    window_seconds: int
    blocked_values: frozenset[str]  # compared ignoring case and surrounding blanks


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """How identity links are decided (``pipeline.identity``); empty means no extra guard rails."""

    blocked_values: frozenset[str] = frozenset()  # for every type
    types: Mapping[str, IdentifierRule] = field(default_factory=dict)

    def rule(self, id_type: str) -> IdentifierRule | None:
        return self.types.get(id_type)

    def blocked(self, id_type: str) -> frozenset[str]:
        """Every value refused for this type, normalised for comparison."""
        rule = self.types.get(id_type)
        return self.blocked_values | (rule.blocked_values if rule else frozenset())


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Sliding event-time windows per channel and dimension (``pipeline.windows``).

    ``window_seconds`` is the window the channel alert rules judge; ``report_windows_seconds``
    are the windows written to ClickHouse ``channel_scores`` and the window gauges. Per channel,
    ``dimension_max_tracked`` values are kept apart and the ``dimension_top_n`` busiest of them
    are reported, the rest as one "(other)" value: labels and rows stay bounded.
    """

    window_seconds: int = _limits(1)
    bucket_seconds: int = _limits(1)
    report_windows_seconds: tuple[int, ...]
    dimension_top_n: int = _limits(1)
    dimension_max_tracked: int = _limits(1)

    @property
    def kept_seconds(self) -> int:
        """The longest window, which decides how long buckets are kept."""
        return max(self.window_seconds, *self.report_windows_seconds)


# -- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleKind:
    """What a kind of rule watches, which way it breaches, and the scale of its threshold."""

    subject: str  # "customer" or "channel"
    fires_below: bool  # breach when the value is below the threshold, else above it
    threshold_limits: tuple[float | None, float | None]
    integer_threshold: bool = False
    windowed: bool = False  # the rule needs its own window_seconds


RULE_KINDS: Mapping[str, RuleKind] = {
    "customer_score_below": RuleKind("customer", True, (0, 100)),
    "customer_score_drop": RuleKind("customer", False, (0, 100), windowed=True),
    "customer_failed_contacts": RuleKind("customer", False, (0, None), integer_threshold=True),
    "channel_score_below": RuleKind("channel", True, (0, 100)),
    "channel_nps_below": RuleKind("channel", True, (-100, 100)),
    "channel_error_rate_above": RuleKind("channel", False, (0, 1)),
}


@dataclass(frozen=True, slots=True)
class Escalation:
    """Raise a customer alert's severity for customers worth at least this much."""

    lifetime_value_at_least: float
    severity: str


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    kind: str
    threshold: float
    severity: str
    window_seconds: int | None = None
    min_samples: int = 1
    cooldown_seconds: int = 0
    hysteresis: float = 0.0
    channel: str | None = None  # channel rules: only this channel (None: every channel)
    dimension: str | None = None  # channel rules: per value of this dimension (None: channel total)
    escalation: Escalation | None = None
    # What the kind implies, kept on the rule: both are read for every rule at every event, and
    # looking them up there was 1% of a worker's time.
    subject: str = field(init=False, repr=False, compare=False)
    fires_below: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = RULE_KINDS[self.kind]
        object.__setattr__(self, "subject", kind.subject)
        object.__setattr__(self, "fires_below", kind.fires_below)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    scoring: ScoringConfig
    customer: CustomerConfig
    journeys: JourneyConfig
    windows: WindowConfig
    alerts: tuple[AlertRule, ...]
    identity: IdentityConfig = IdentityConfig()


# -- loading -------------------------------------------------------------------------------


def load_model_config(path: str | Path | None = None) -> ModelConfig:
    """Read and validate a model file; None reads the bundled, documented default."""
    if path is None:
        text = resources.files("touchpoint").joinpath("defaults/model.yaml").read_text("utf-8")
        source = "bundled touchpoint/defaults/model.yaml"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return parse_model_config(data)


def parse_model_config(data: Any) -> ModelConfig:
    """Validate a parsed YAML document; the first problem raises ``ConfigError``."""
    top = _Node(data, "")
    scoring = _scoring(top.node("scoring"))
    customer = _build(CustomerConfig, top.node("customer"))
    journeys = _journeys(top.node("journeys"))
    windows = _windows(top.node("windows"))
    alerts = _alerts(top.nodes("alerts"))
    identity = _identity(top.node("identity")) if top.has("identity") else IdentityConfig()
    top.close()
    for outcome in scoring.journey.outcome_points:
        if outcome not in journeys.outcomes:
            known = ", ".join(sorted(journeys.outcomes))
            raise ConfigError(
                f"scoring.journey.outcome_points.{outcome}: expected a journey outcome ({known}), got {outcome!r}"
            )
    return ModelConfig(scoring, customer, journeys, windows, alerts, identity)


_REQUIRED: Any = object()


class _Node:
    """A YAML mapping being read: knows its key path, and which keys were read so the rest are unknown."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or '(top level)'}: expected a mapping, got {data!r}")
        self.data = data
        self.path = path
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str, default: Any = _REQUIRED) -> tuple[Any, bool]:
        """The value and whether it was given; a missing required key is an error."""
        self._read.add(key)
        if key in self.data:
            return self.data[key], True
        if default is _REQUIRED:
            unread = [k for k in self.data if isinstance(k, str) and k not in self._read]
            close = difflib.get_close_matches(key, unread, n=1)
            hint = f" (found {close[0]!r})" if close else ""
            raise ConfigError(f"{self.at(key)}: required key is missing{hint}")
        return default, False

    def number(self, key: str, lo: float | None = 0, hi: float | None = None, *,
               integer: bool = False, default: Any = _REQUIRED) -> Any:
        value, given = self.take(key, default)
        if not given:
            return value
        ok = (
            isinstance(value, int if integer else (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (lo is None or value >= lo)
            and (hi is None or value <= hi)
        )
        if not ok:
            raise ConfigError(f"{self.at(key)}: expected {_describe(lo, hi, integer)}, got {value!r}")
        return value if integer else float(value)

    def text(self, key: str, choices: typing.Iterable[str] | None = None, *, default: Any = _REQUIRED) -> Any:
        value, given = self.take(key, default)
        if not given:
            return value
        options = tuple(choices) if choices is not None else None
        if options is not None and value not in options:
            raise ConfigError(f"{self.at(key)}: expected one of {', '.join(options)}, got {value!r}")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.at(key)}: expected a non-empty text, got {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value, _ = self.take(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{self.at(key)}: expected a list of non-empty texts, got {value!r}")
        return tuple(value)

    def node(self, key: str, *, default: Any = _REQUIRED) -> _Node:
        value, _ = self.take(key, default)
        return _Node(value, self.at(key))

    def nodes(self, key: str) -> list[_Node]:
        value, _ = self.take(key)
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: expected a list of mappings, got {value!r}")
        return [_Node(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]

    def forbid(self, key: str, reason: str) -> None:
        if key in self.data:
            raise ConfigError(f"{self.at(key)}: not allowed: {reason}")

    def close(self) -> None:
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            expected = ", ".join(sorted(self._read)) or "no keys"
            raise ConfigError(f"{self.at(str(unknown[0]))}: unknown key (expected one of: {expected})")


def _describe(lo: float | None, hi: float | None, integer: bool) -> str:
    noun = "an integer" if integer else "a number"
    if lo is not None and hi is not None:
        return f"{noun} {lo:g}-{hi:g}" if lo >= 0 else f"{noun} {lo:g} to {hi:g}"
    if lo is not None:
        return f"{noun} >= {lo:g}"
    return noun if hi is None else f"{noun} <= {hi:g}"


def _build(cls: type, node: _Node, **given: Any) -> Any:
    """Read every field of ``cls`` not in ``given`` from the key of the same name, by its type."""
    hints = typing.get_type_hints(cls)
    values = dict(given)
    for f in fields(cls):
        if f.name in given:
            continue
        kind = hints[f.name]
        lo, hi = f.metadata.get("limits", (0, None))
        if kind is int or kind is float:
            values[f.name] = node.number(f.name, lo, hi, integer=kind is int)
        elif kind is str:
            values[f.name] = node.text(f.name)
        elif kind == tuple[str, ...]:
            values[f.name] = node.texts(f.name)
        elif is_dataclass(kind):
            values[f.name] = _build(kind, node.node(f.name))
        else:  # pragma: no cover - a new field type needs a reader here
            raise TypeError(f"{cls.__name__}.{f.name}: no reader for {kind}")
    node.close()
    return cls(**values)


def _scoring(node: _Node) -> ScoringConfig:
    scales_node = node.node("feedback_scales")
    scales = {kind: _feedback_scale(scales_node.node(kind)) for kind in FEEDBACK_KINDS}
    scales_node.close()
    return _build(ScoringConfig, node, feedback_scales=scales, journey=_journey_scoring(node.node("journey")))


def _feedback_scale(node: _Node) -> FeedbackScale:
    scale = _build(FeedbackScale, node)
    if scale.worst == scale.best:
        raise ConfigError(f"{node.at('best')}: expected a value different from worst ({scale.worst}), got {scale.best!r}")
    return scale


def _journey_scoring(node: _Node) -> JourneyScoring:
    points_node = node.node("outcome_points")
    points = {str(k): points_node.number(k, None) for k in points_node.data}
    points_node.close()
    return _build(JourneyScoring, node, outcome_points=points)


def _journeys(node: _Node) -> JourneyConfig:
    gaps_node = node.node("channel_inactivity_gap_seconds", default={})
    read = {c: gaps_node.number(c, 1, integer=True, default=None) for c in CHANNELS}
    gaps = {channel: gap for channel, gap in read.items() if gap is not None}
    gaps_node.close()
    outcomes = tuple(_terminal_outcome(item) for item in node.nodes("terminal_outcomes"))
    return _build(JourneyConfig, node, channel_inactivity_gap_seconds=gaps, terminal_outcomes=outcomes)


def _terminal_outcome(node: _Node) -> TerminalOutcome:
    attributes_node = node.node("attributes", default={})
    for key, value in attributes_node.data.items():
        attributes_node.take(key)
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{attributes_node.at(str(key))}: expected a text, number or boolean, got {value!r}")
    return _build(TerminalOutcome, node, attributes=dict(attributes_node.data))


_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _identity(node: _Node) -> IdentityConfig:
    blocked = _blocked_values(node)
    types_node = node.node("types", default={})
    types: dict[str, IdentifierRule] = {}
    for id_type in list(types_node.data):
        if not isinstance(id_type, str) or not _TYPE_NAME.fullmatch(id_type):
            raise ConfigError(f"{types_node.at(str(id_type))}: expected an identifier type in lower_snake_case, got {id_type!r}")
        rule_node = types_node.node(id_type)
        max_customers = rule_node.number("max_customers", 1, integer=True, default=None)
        window = rule_node.number("window_seconds", 1, integer=True, default=None)
        if (max_customers is None) != (window is None):
            raise ConfigError(f"{rule_node.at('window_seconds')}: max_customers and window_seconds go together")
        types[id_type] = IdentifierRule(max_customers, window or 0, _blocked_values(rule_node))
        rule_node.close()
    types_node.close()
    node.close()
    return IdentityConfig(blocked, types)


def _blocked_values(node: _Node) -> frozenset[str]:
    values, _ = node.take("blocked_values", [])
    if not isinstance(values, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{node.at('blocked_values')}: expected a list of texts, got {values!r}")
    return frozenset(str(v).strip().lower() for v in values)


def _windows(node: _Node) -> WindowConfig:
    reported, _ = node.take("report_windows_seconds")
    if not isinstance(reported, list) or not reported or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in reported
    ) or len(set(reported)) != len(reported):
        raise ConfigError(
            f"{node.at('report_windows_seconds')}: expected a non-empty list of distinct integers >= 1, got {reported!r}"
        )
    windows = _build(WindowConfig, node, report_windows_seconds=tuple(reported))
    for key, value in [("window_seconds", windows.window_seconds),
                       *((f"report_windows_seconds[{i}]", v) for i, v in enumerate(reported))]:
        if value % windows.bucket_seconds:
            raise ConfigError(
                f"{node.at(key)}: expected a multiple of bucket_seconds ({windows.bucket_seconds}), got {value}"
            )
    if windows.dimension_top_n > windows.dimension_max_tracked:
        raise ConfigError(
            f"{node.at('dimension_top_n')}: expected at most dimension_max_tracked "
            f"({windows.dimension_max_tracked}), got {windows.dimension_top_n}"
        )
    return windows


_RULE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _alerts(nodes: list[_Node]) -> tuple[AlertRule, ...]:
    rules: list[AlertRule] = []
    for node in nodes:
        rule = _rule(node)
        if any(other.name == rule.name for other in rules):
            raise ConfigError(f"{node.at('name')}: expected a unique rule name, got {rule.name!r} again")
        rules.append(rule)
    return tuple(rules)


def _rule(node: _Node) -> AlertRule:
    name = node.text("name")
    if not _RULE_NAME.fullmatch(name):
        raise ConfigError(f"{node.at('name')}: expected lower_snake_case (it is a metric label), got {name!r}")
    kind_name = node.text("kind", RULE_KINDS)
    kind = RULE_KINDS[kind_name]
    severity = node.text("severity", SEVERITIES)
    if kind.windowed:
        window = node.number("window_seconds", 1, integer=True)
    else:
        node.forbid("window_seconds", f"{kind_name} has no window of its own")
        window = None
    if kind.subject == "channel":
        node.forbid("escalation", "only customer rules escalate")
        min_samples = node.number("min_samples", 1, integer=True, default=1)
        channel, dimension = _rule_scope(node)
        escalation = None
    else:
        for key in ("min_samples", "channel", "dimension"):
            node.forbid(key, f"{kind_name} is a customer rule")
        min_samples, channel, dimension = 1, None, None
        escalation = _escalation(node.node("escalation"), severity) if node.has("escalation") else None
    lo, hi = kind.threshold_limits
    rule = AlertRule(
        name=name,
        kind=kind_name,
        threshold=node.number("threshold", lo, hi, integer=kind.integer_threshold),
        severity=severity,
        window_seconds=window,
        min_samples=min_samples,
        cooldown_seconds=node.number("cooldown_seconds", 0, integer=True, default=0),
        hysteresis=node.number("hysteresis", 0, default=0.0),
        channel=channel,
        dimension=dimension,
        escalation=escalation,
    )
    node.close()
    return rule


def _rule_scope(node: _Node) -> tuple[str | None, str | None]:
    """A channel rule's channel and dimension; a dimension implies its channel."""
    channel = node.text("channel", CHANNELS, default=None)
    dimension = node.text("dimension", DIMENSION_BY_CHANNEL.values(), default=None)
    if dimension is None:
        return channel, None
    owner = next(c for c, d in DIMENSION_BY_CHANNEL.items() if d == dimension)
    if channel not in (None, owner):
        raise ConfigError(f"{node.at('channel')}: expected {owner} (the channel of {dimension}), got {channel!r}")
    return owner, dimension


def _escalation(node: _Node, severity: str) -> Escalation:
    escalation = _build(Escalation, node)
    higher = SEVERITIES[SEVERITIES.index(severity) + 1:]
    if escalation.severity not in higher:
        expected = f"one of {', '.join(higher)}" if higher else f"nothing: {severity} is the highest severity"
        raise ConfigError(f"{node.at('severity')}: expected {expected}, got {escalation.severity!r}")
    return escalation
