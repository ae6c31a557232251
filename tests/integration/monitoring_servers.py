"""Real Prometheus and Alertmanager (Debian packages) as child processes on loopback ports.

Each gets a temporary config and storage path of its own and is stopped with the test, like the
servers of ``touchpoint.localstack``. Used by the Alertmanager and Prometheus integration tests.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import yaml

from touchpoint.harness import wait_until
from touchpoint.localstack import ChildServer, free_port, wait_for_port

ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
PROMETHEUS_BINARY = "/usr/bin/prometheus"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _ready(url: str) -> bool:
    """Prometheus listens before it has loaded its storage and answers its API with 503 until
    then; both servers say 200 on ``/-/ready`` once they serve."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _start(name: str, argv: list[str], workdir: Path, port: int) -> ChildServer:
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    server = ChildServer(name, process, port, log_path)
    try:
        wait_for_port(port, 30, process)
        wait_until(lambda: _ready(f"http://127.0.0.1:{port}/-/ready"), timeout=30, interval=0.2,
                   describe=f"{name} ready")
    except Exception:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[str]:
    """An Alertmanager with this config; yields its base URL. Clustering is off."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = _start("alertmanager", [
        ALERTMANAGER_BINARY, f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ], workdir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def prometheus(workdir: Path, config: dict[str, Any], rule_files: dict[str, str]) -> Iterator[str]:
    """A Prometheus with this config and these rule files (name -> YAML text); yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules").mkdir(exist_ok=True)
    for name, text in rule_files.items():
        (workdir / "rules" / name).write_text(text)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = _start("prometheus", [
        PROMETHEUS_BINARY, f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
    ], workdir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
