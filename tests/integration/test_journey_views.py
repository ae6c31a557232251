"""The 0005 views on a real ClickHouse show what the customer step's rows mean.

Rows come from the pure customer step and identity rules (no worker, no Kafka): an anonymous
visitor who logs in, a late touchpoint that bridges two journeys, one that splits a journey, and
one beyond the lateness. They are inserted as the sink would insert them, and the BI views must
show the same attribution and journeys as the in-memory reading of the same rows
(``tests/unit/journey_views.py``), with every absorbed journey left out, never an orphan.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipeline.config import load_model_config
from pipeline.customer import CustomerStep, Emitted
from pipeline.identity import IdentityRules, IdentityState, anonymous_key
from pipeline.model import Event
from sinks.clickhouse import connect
from sinks.migrations import migrate
from touchpoint.settings import Settings

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from journey_views import Views  # noqa: E402

CONFIG = load_model_config()
# A lateness longer than the web gap, so that a late touchpoint can split a journey.
STEP = CustomerStep(replace(CONFIG, journeys=replace(CONFIG.journeys, allowed_lateness_seconds=2400)))
T0 = 1_700_000_000_000
MIN = 60_000
ANON = anonymous_key("anonymous_id:visitor-1")


def ev(event_id: str, minute: float, channel: str = "web", type_: str = "page_view") -> Event:
    return Event(event_id, T0 + int(minute * MIN), channel, type_)


def scenario() -> tuple[list[Emitted], list[dict[str, Any]]]:
    """The rows a worker would write, in order, and the identity_links rows."""
    outs: list[Emitted] = []
    states: dict[str, Any] = {}

    def apply(key: str, event: Event) -> None:
        states[key], out = STEP.apply_event(states.get(key), key, event)
        outs.append(out)

    apply(ANON, ev("browse-1", 0))
    apply(ANON, ev("browse-2", 5))
    apply("cust-1", ev("call-1", 30, "call"))
    _, identity = IdentityState().attribute_event("anonymous_id:visitor-1", 0)  # resolve sent the browsing to ANON
    _, decision = IdentityRules().decide(identity, {"customer_id": "cust-1", "event_id": "login-1",
                                               "occurred_at_ms": T0 + 8 * MIN, "type": "anonymous_id",
                                               "value": "visitor-1"})
    assert decision.absorb == ANON
    states["cust-1"], out = STEP.absorb(states.get("cust-1"), "cust-1", states.pop(ANON), ANON)
    outs.append(out)
    apply("cust-1", ev("login-1", 8))  # joins the browsing; the call 22 min later is apart (web gap 15)
    apply("cust-1", ev("bridge", 20, "app"))  # late: bridges the two, the call journey is merged
    apply("cust-1", ev("call-2", 65, "call"))  # within the call gap (60) of call-1
    apply("cust-1", ev("web-late", 45))  # late web: call-2 is 20 min after it, beyond the web gap
    apply("cust-1", ev("much-later", 200))
    apply("cust-1", ev("too-late", 100))  # beyond the lateness: flagged, in no journey
    states["cust-1"], out = STEP.close_if_idle(states["cust-1"], "cust-1", T0 + 10**9)
    outs.append(out)
    return outs, [decision.row]


def insert(client: Any, database: str, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        columns = list(rows[0])
        client.execute(f"INSERT INTO {database}.{table} ({', '.join(columns)}) VALUES",
                       [[row[c] for row in rows] for c in columns], columnar=True, types_check=False)


def test_the_views_show_the_stitched_and_merged_journeys(settings: Settings) -> None:
    migrate(settings.clickhouse)
    migrate(settings.clickhouse)  # applied once; a second run changes nothing
    outs, links = scenario()
    database = settings.clickhouse.database
    client = connect(settings.clickhouse)
    for out in outs:  # one insert per step, as the sink batches them in order
        for table in ("touchpoints", "journeys", "merged_journeys", "touchpoint_journeys"):
            insert(client, database, table, out.rows[table])
    insert(client, database, "identity_links", links)

    expected = Views(stitched={ANON: "cust-1"})
    expected.write(outs)
    summary = expected.summary()
    assert sorted(sorted(m) for m, *_ in summary.values()) == [
        ["bridge", "browse-1", "browse-2", "call-1", "login-1", "web-late"], ["call-2"], ["much-later"]]

    touchpoints = client.execute(
        f"SELECT event_id, customer_key, journey_id, late FROM {database}.customer_touchpoints ORDER BY event_id")
    assert {row[1] for row in touchpoints} == {"cust-1"}
    assert [row[0] for row in touchpoints if row[3]] == ["too-late"]
    assert {e: j for e, _, j, late in touchpoints if not late} == {
        e: expected.touchpoint_journey(e) for e in expected.tables["touchpoints"] if e != "too-late"}

    journeys = client.execute(
        f"SELECT journey_id, customer_key, touchpoint_count, status, outcome FROM {database}.customer_journeys")
    assert {j: (c, n, s, o) for j, c, n, s, o in journeys} == {
        j: (customer, count, status, outcome) for j, (_, status, outcome, count, customer) in summary.items()}
    merged = client.execute(f"SELECT count() FROM {database}.journey_merges")[0][0]
    assert merged == len(expected.tables["merged_journeys"]) >= 1
