"""``touchpoint bench`` end to end on the real servers, with a small dataset.

Asserts that every figure is produced and positive, never how large: timing targets are read from
the command's output on a quiet machine, not asserted by a test on a shared one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from touchpoint.localstack import LocalStack

pytestmark = pytest.mark.integration

LINE = re.compile(
    r"^bench: touchpoint=(\d+) floor=(\d+) ratio_floor=([\d.]+) naive=(\d+) ratio_naive=([\d.]+) "
    r"ceiling=(\d+) quix=(\S+) ratio_quix=(\S+) p99_clickhouse_s=([\d.]+) rss_mb=(\d+)$"
)


def test_bench_reports_every_figure(stack: LocalStack, tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = dict(os.environ, TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
               TOUCHPOINT_CLICKHOUSE_URL=stack.clickhouse_url)
    done = subprocess.run(
        # enough events that every contender spans a few of the bench's one-second samples (3,000
        # went by between two samples once the worker passed 3,000 events/s)
        [sys.executable, "-m", "touchpoint.cli", "bench", "--events", "15000", "--workers", "1,2",
         "--latency-seconds", "4", "--timeout", "240", "--output", str(output), "--workdir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    last = done.stdout.strip().splitlines()[-1]
    match = LINE.match(last)
    assert match, last

    report = json.loads(output.read_text())
    contenders = report["contenders"]
    quix_installed = importlib.util.find_spec("quixstreams") is not None
    measured = ["ceiling", "domain", "floor", "naive", "touchpoint", "touchpoint_2w"] + (["quix"] if quix_installed else [])
    for name in measured:
        result = contenders[name]
        assert result["status"] == "ok", result
        assert result["events_per_s"] > 0, result
        assert result["cpu_s_per_1000"] > 0, result
        assert result["peak_rss_mb"] > 0, result
    assert contenders["touchpoint_2w"]["processes"] == 2
    if quix_installed:
        assert float(match.group(7)) > 0 and float(match.group(8)) > 0
    else:
        assert contenders["quix"]["status"] == "skipped"
        assert (match.group(7), match.group(8)) == ("na", "na")

    assert report["ratios"]["ratio_floor"] > 0 and report["ratios"]["ratio_naive"] > 0
    latency = report["latency"]
    assert latency["sent"] > 0 and latency["visible"] == latency["sent"]
    assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"] <= latency["max_s"]
    state = report["state_per_customer"]
    assert state["customers"] > 0 and 0 < state["mean_bytes"] <= state["max_bytes"]
    assert report["setup"]["dataset"]["messages"] == 15000
    assert report["setup"]["machine"]["nproc"] >= 1
