"""Dockerfile and .dockerignore: multi-stage, non-root, health-checked, `touchpoint` entrypoint."""

from __future__ import annotations

import json
import re

from ._support import ROOT


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_multi_stage_on_python_311_slim():
    ins = instructions()
    args = dict(re.match(r"(\w+)=(\S+)", rest).groups() for kw, rest in ins if kw == "ARG" and "=" in rest)
    froms = [rest.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")) for kw, rest in ins if kw == "FROM"]
    assert len(froms) >= 2
    assert all(f.startswith("python:3.11-slim") for f in froms)
    assert any("COPY" == kw and "--from=" in rest for kw, rest in ins)
    assert any("pip wheel" in rest for kw, rest in ins if kw == "RUN")


def test_runs_as_non_root():
    users = [rest for kw, rest in instructions() if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_healthcheck_and_entrypoint():
    ins = instructions()
    health = [rest for kw, rest in ins if kw == "HEALTHCHECK"]
    assert health and "127.0.0.1" in health[0] and "/healthz" in health[0] and "9108" in health[0]
    entry = [rest for kw, rest in ins if kw == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["touchpoint"]


def test_dockerignore_keeps_the_context_small():
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include what the wheel needs"
    included = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert {"pyproject.toml", "touchpoint", "pipeline", "agents", "sinks", "schemas"} <= included
    assert not included & {".venv", ".git", "tests", "deploy"}
