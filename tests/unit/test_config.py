"""The bundled model file loads; every kind of mistake gives an error naming the key and the fix."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import ConfigError, load_model_config, parse_model_config
from pipeline.model import Event

BUNDLED: dict[str, Any] = yaml.safe_load(
    resources.files("touchpoint").joinpath("defaults/model.yaml").read_text("utf-8")
)
DELETE = object()


def edited(path: str, value: Any) -> dict[str, Any]:
    """The bundled document with one key (dotted path, [i] for list items) set or deleted."""
    document = copy.deepcopy(BUNDLED)
    *parents, last = path.replace("[", ".").replace("]", "").split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return document


def renamed(path: str, new_name: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    document = edited(path, DELETE)
    node: Any = document
    for part in parents:
        node = node[part]
    node[new_name] = _get(BUNDLED, path)
    return document


def _get(document: Any, path: str) -> Any:
    for part in path.split("."):
        document = document[part]
    return document


def test_the_bundled_file_loads_with_the_documented_defaults() -> None:
    config = load_model_config(None)
    assert config.journeys.inactivity_gap_seconds == 1800
    assert config.journeys.gap_seconds("web") == 900
    assert config.journeys.gap_seconds("call") == 3600
    assert config.journeys.gap_seconds("store") == 1800
    assert config.customer.half_life_seconds == 7 * 24 * 3600
    assert config.customer.at_risk_threshold == 40
    assert config.scoring.feedback_weight == 0.8
    assert config.scoring.base_points == 85
    rules = {rule.name: rule for rule in config.alerts}
    at_risk = rules["customer_at_risk"]
    assert (at_risk.kind, at_risk.threshold, at_risk.severity) == ("customer_score_below", 40, "warning")
    channel = rules["channel_score_low"]
    assert (channel.kind, channel.threshold, channel.min_samples, channel.severity) == (
        "channel_score_below", 55, 20, "critical")
    assert config.windows.window_seconds == 300
    assert rules["call_queue_score_low"].channel == "call"  # implied by dimension queue


def test_a_file_path_loads_the_same_as_the_bundled_default(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(BUNDLED))
    assert load_model_config(path) == load_model_config(None)
    assert load_model_config(str(path)) == load_model_config(None)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (edited("alerts[1].threshold", "abc"), "alerts[1].threshold: expected a number 0-100, got 'abc'"),
        (edited("scoring.feedback_weight", 1.5), "scoring.feedback_weight: expected a number 0-1, got 1.5"),
        (edited("scoring.base_points", True), "scoring.base_points: expected a number 0-100, got True"),
        (edited("scoring.call.abandoned_penalty_points", -40),
         "scoring.call.abandoned_penalty_points: expected a number >= 0, got -40"),
        (edited("scoring.app.low_rating_max_stars", 0), "scoring.app.low_rating_max_stars: expected a number 1-5, got 0"),
        (edited("scoring.call.wiat", 3), "scoring.call.wiat: unknown key (expected one of: abandoned_penalty_points,"),
        (edited("alert", []), "alert: unknown key (expected one of: alerts, customer, identity, journeys, scoring, windows)"),
        (edited("scoring.base_points", DELETE), "scoring.base_points: required key is missing"),
        (renamed("customer.half_life_seconds", "half_life_secs"),
         "customer.half_life_seconds: required key is missing (found 'half_life_secs')"),
        (edited("scoring.call.wait", 60), "scoring.call.wait: expected a mapping, got 60"),
        (edited("scoring.web.checkout_abandoned_types", "cart_abandoned"),
         "scoring.web.checkout_abandoned_types: expected a list of non-empty texts, got 'cart_abandoned'"),
        (edited("scoring.feedback_scales.ces.best", 7),
         "scoring.feedback_scales.ces.best: expected a value different from worst (7), got 7"),
        (edited("scoring.feedback_scales.stars", {"worst": 1, "best": 5}), "scoring.feedback_scales.stars: unknown key"),
        (edited("scoring.journey.last_touchpoint_weight", 0.5),
         "scoring.journey.last_touchpoint_weight: expected a number >= 1, got 0.5"),
        (edited("scoring.journey.outcome_points.refunded", 3),
         "scoring.journey.outcome_points.refunded: expected a journey outcome (inactive, purchased, resolved), "
         "got 'refunded'"),
        (edited("journeys.inactivity_gap_seconds", 30.5),
         "journeys.inactivity_gap_seconds: expected an integer >= 1, got 30.5"),
        (edited("journeys.channel_inactivity_gap_seconds.fax", 60), "journeys.channel_inactivity_gap_seconds.fax: unknown key"),
        (edited("journeys.terminal_outcomes[2].attributes.resolved", [True]),
         "journeys.terminal_outcomes[2].attributes.resolved: expected a text, number or boolean, got [True]"),
        (edited("journeys.terminal_outcomes[0].outcome", ""),
         "journeys.terminal_outcomes[0].outcome: expected a non-empty text, got ''"),
        (edited("windows.window_seconds", 305), "windows.window_seconds: expected a multiple of bucket_seconds (10), got 305"),
        (edited("alerts", {"name": "x"}), "alerts: expected a list of mappings"),
        (edited("alerts[0].kind", "customer_sad"), "alerts[0].kind: expected one of customer_score_below, "),
        (edited("alerts[0].severity", "page"), "alerts[0].severity: expected one of info, warning, critical, got 'page'"),
        (edited("alerts[0].name", "At Risk"), "alerts[0].name: expected lower_snake_case (it is a metric label), got 'At Risk'"),
        (edited("alerts[1].name", "customer_at_risk"),
         "alerts[1].name: expected a unique rule name, got 'customer_at_risk' again"),
        (edited("alerts[0].window_seconds", 60),
         "alerts[0].window_seconds: not allowed: customer_score_below has no window of its own"),
        (edited("alerts[1].window_seconds", DELETE), "alerts[1].window_seconds: required key is missing"),
        (edited("alerts[0].min_samples", 5), "alerts[0].min_samples: not allowed: customer_score_below is a customer rule"),
        (edited("alerts[0].escalation.severity", "info"), "alerts[0].escalation.severity: expected one of critical, got 'info'"),
        (edited("alerts[3].escalation", {"lifetime_value_at_least": 1, "severity": "critical"}),
         "alerts[3].escalation: not allowed: only customer rules escalate"),
        (edited("alerts[3].dimension", "postcode"), "alerts[3].dimension: expected one of queue, page_group, store_id"),
        (edited("alerts[4].channel", "web"), "alerts[4].channel: expected call (the channel of queue), got 'web'"),
        (edited("alerts[2].threshold", 2.5), "alerts[2].threshold: expected an integer >= 0, got 2.5"),
        (edited("alerts[6].threshold", 150), "alerts[6].threshold: expected a number -100 to 100, got 150"),
        (edited("alerts[7].threshold", 5), "alerts[7].threshold: expected a number 0-1, got 5"),
        (edited("alerts[3].cooldown_seconds", -1), "alerts[3].cooldown_seconds: expected an integer >= 0, got -1"),
        (edited("alerts[3].hysteresis", "5"), "alerts[3].hysteresis: expected a number >= 0, got '5'"),
        ([], "(top level): expected a mapping, got []"),
    ],
)
def test_a_bad_document_names_the_key_and_what_was_expected(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_model_config(document)
    assert str(error.value).startswith(message)


def test_an_unreadable_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("scoring: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_model_config(broken)


@pytest.mark.parametrize(
    ("event_type", "attributes", "outcome"),
    [
        ("purchase", {}, "purchased"),
        ("checkout", {"page": "/checkout"}, "purchased"),
        ("call_ended", {"resolved": True}, "resolved"),
        ("call_ended", {"resolved": "TRUE"}, "resolved"),  # compared as text, ignoring case
        ("call_ended", {"resolved": False}, None),
        ("call_ended", {}, None),
        ("page_view", {}, None),
    ],
)
def test_terminal_outcomes_match_type_and_attributes(event_type: str, attributes: dict, outcome: str | None) -> None:
    event = Event("e1", 0, "call", event_type, attributes=attributes)
    assert load_model_config(None).journeys.terminal_outcome(event) == outcome
