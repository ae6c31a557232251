"""The baselines and peers Touchpoint is measured against, each run as its own process.

A peer reads its :class:`PeerConfig` from the ``TOUCHPOINT_BENCH_PEER`` environment variable and
reports progress as ``progress <wall time> <count>`` lines on stdout (see :class:`Progress`);
it keeps running after reaching the total, so its memory can be read before it is stopped.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

CONFIG_ENV = "TOUCHPOINT_BENCH_PEER"
PROGRESS_PREFIX = "progress"


@dataclass(frozen=True)
class PeerConfig:
    bootstrap_servers: str
    topics: dict[str, str | None]  # source topic -> its channel (None for the identity topic)
    group_id: str
    total: int
    partitions: int
    clickhouse_url: str = ""
    state_dir: str = ""
    batch_rows: int = 100

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> PeerConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise SystemExit(f"{CONFIG_ENV} is not set: peers are started by `touchpoint bench`")
        return cls(**json.loads(raw))


class Progress:
    """Counts work done and reports it with the peer's own clock, cheaply.

    A line at the first unit, then every ``step`` units and at the total: enough points for the
    bench's throughput window, few enough not to slow a peer doing 200,000 events a second.
    """

    def __init__(self, total: int, step: int = 1000) -> None:
        self.total, self.step = total, step
        self.count = 0
        self._next = 1

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self._next:
            # Straight to file descriptor 1: Faust's worker replaces sys.stdout with a logger.
            os.write(1, f"{PROGRESS_PREFIX} {time.time():.6f} {self.count}\n".encode())
            self._next = min(self.count + self.step, self.total) if self.count < self.total else sys.maxsize

    @property
    def done(self) -> bool:
        return self.count >= self.total


def parse_progress(line: str) -> tuple[float, int] | None:
    """``(wall time, count)`` from one stdout line of a peer, None for anything else it prints."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        return float(parts[1]), int(parts[2])
    except ValueError:
        return None


def faust_peer_app(config: PeerConfig, name: str, value_serializer: str = "raw") -> Any:
    """The Faust app both Faust peers run on: the same group, broker and timeouts, so they differ
    only in what their agents do."""
    import faust

    return faust.App(
        config.group_id,
        broker=[f"kafka://{server}" for server in config.bootstrap_servers.split(",")],
        store="memory://",
        datadir=config.state_dir or tempfile.mkdtemp(prefix=f"bench-{name}-"),
        topic_partitions=config.partitions,
        topic_disable_leader=True,
        web_enabled=False,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer=value_serializer,
    )


def use_worker_runtime() -> None:
    """The worker's runtime (:func:`touchpoint.runtime.use_worker_runtime`) from this process's
    settings, for the peers that stand for the fastest a framework or Touchpoint's own code goes."""
    from touchpoint.runtime import use_worker_runtime as use
    from touchpoint.settings import load_settings

    use(load_settings())


def run_faust_peer(app: Any, *, worker_runtime: bool) -> None:
    """Run a Faust peer: on the worker's runtime for the floor (the fastest a Faust agent
    iterates), on Faust's defaults for the naive peer (the job written the obvious way)."""
    import faust

    if worker_runtime:
        use_worker_runtime()
    worker = faust.Worker(app, loglevel="info", quiet=True)
    if worker_runtime:
        from touchpoint.gc_tuning import freeze_start_up

        freeze_start_up()  # as the worker does once it is built
    worker.execute_from_commandline()
