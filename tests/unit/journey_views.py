"""An in-memory reading of the rows the customer step emits, as the ClickHouse views read them.

Tests compare what BI would see: the latest version of each row, touchpoints moved to another
journey, merged journeys followed to their survivor and left out of the journey list. The SQL of
the same views (schemas/clickhouse/0005) is checked against a real ClickHouse separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pipeline.customer import MERGED_STATUS, Emitted

Row = Mapping[str, Any]


@dataclass
class Views:
    tables: dict[str, dict[str, Row]] = field(default_factory=lambda: {
        "touchpoints": {}, "journeys": {}, "merged_journeys": {}, "touchpoint_journeys": {}})
    stitched: dict[str, str] = field(default_factory=dict)  # anonymous key -> customer key

    def write(self, emitted: Emitted | Iterable[Emitted]) -> None:
        for one in [emitted] if isinstance(emitted, Emitted) else emitted:
            for table, key in (("touchpoints", "event_id"), ("journeys", "journey_id"),
                               ("merged_journeys", "journey_id"), ("touchpoint_journeys", "event_id")):
                for row in one.rows.get(table, []):
                    current = self.tables[table].get(row[key])
                    if current is None or row["version"] >= current["version"]:
                        self.tables[table][row[key]] = row

    def touchpoint_journey(self, event_id: str) -> str:
        row = self.tables["touchpoints"][event_id]
        moved = self.tables["touchpoint_journeys"].get(event_id)
        journey_id = moved["journey_id"] if moved else row["journey_id"]
        journey = self.tables["journeys"].get(journey_id)
        if journey is not None and journey["status"] == MERGED_STATUS:
            return self.tables["merged_journeys"][journey_id]["merged_into"]
        return journey_id

    def customer_journeys(self) -> dict[str, Row]:
        return {jid: row for jid, row in self.tables["journeys"].items() if row["status"] != MERGED_STATUS}

    def customer_of(self, key: str) -> str:
        return self.stitched.get(key, key)

    def summary(self) -> dict[str, tuple[frozenset[str], str, str, int, str]]:
        """Journey id -> (member event ids, status, outcome, touchpoint count, customer)."""
        members: dict[str, set[str]] = {}
        for event_id, row in self.tables["touchpoints"].items():
            if not row["late"]:
                members.setdefault(self.touchpoint_journey(event_id), set()).add(event_id)
        return {
            jid: (frozenset(members.get(jid, ())), row["status"], row["outcome"], row["touchpoint_count"],
                  self.customer_of(row["customer_key"]))
            for jid, row in self.customer_journeys().items()
        }
