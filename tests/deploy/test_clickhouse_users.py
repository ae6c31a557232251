"""The read-only BI user: one users.d file valid for ClickHouse 18.16 and current ClickHouse."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ._support import DEPLOY

BI = DEPLOY / "clickhouse" / "users.d" / "bi-readonly.xml"
CURRENT = DEPLOY / "clickhouse" / "current"

# Settings ClickHouse 18.16 knows; a profile with any other key fails there ("Unknown setting").
SETTINGS_18_16 = {"readonly", "max_execution_time", "max_result_rows", "result_overflow_mode",
                  "max_memory_usage", "max_rows_to_read", "max_bytes_to_read", "read_overflow_mode"}


def test_root_is_yandex_for_both_versions():
    # 18.16 merges users.d files with a <yandex> root; current ClickHouse accepts <yandex> and <clickhouse>.
    assert ET.parse(BI).getroot().tag == "yandex"


def test_bi_user_is_read_only_on_cx_only():
    root = ET.parse(BI).getroot()
    user = root.find("users/bi")
    assert user is not None
    profile_name = user.findtext("profile")
    profile = root.find(f"profiles/{profile_name}")
    assert profile is not None and profile.findtext("readonly") == "1"
    assert {child.tag for child in profile} <= SETTINGS_18_16, "setting unknown to ClickHouse 18.16"
    assert [d.text for d in user.findall("allow_databases/database")] == ["cx"]
    assert root.find(f"quotas/{user.findtext('quota')}") is not None
    assert user.find("networks/ip") is not None
    assert user.find("password") is None, "no clear-text password"
    assert re.fullmatch(r"[0-9a-f]{64}", user.findtext("password_sha256_hex") or "")
    assert "sha256sum" in BI.read_text(), "document how to make the hash"


def test_current_only_extras_are_kept_apart():
    # <constraints> breaks 18.16 ("Unknown setting constraints"): it lives outside users.d/.
    assert "constraints" not in BI.read_text().split("-->")[-1]
    extra = ET.parse(CURRENT / "users.d" / "bi-readonly-grafana.xml").getroot()
    assert extra.find("profiles/bi_readonly/constraints/max_execution_time/changeable_in_readonly") is not None
    config = ET.parse(CURRENT / "config.d" / "access-control.xml").getroot()
    assert config.findtext("access_control_improvements/settings_constraints_replace_previous") == "true"


def test_current_clickhouse_accepts_the_views_joins():
    """The views join subqueries without an alias (18.16 syntax); current ClickHouse needs
    joined_subquery_requires_alias=0 for the writer's and the BI profile, and compose mounts it."""
    root = ET.parse(CURRENT / "users.d" / "views-compatibility.xml").getroot()
    assert root.tag == "clickhouse"
    for profile in ("default", "bi_readonly"):
        assert root.findtext(f"profiles/{profile}/joined_subquery_requires_alias") == "0", profile
    compose = (DEPLOY.parent / "docker-compose.yml").read_text()
    assert "./deploy/clickhouse/current/users.d/views-compatibility.xml:/etc/clickhouse-server/users.d/" in compose
