"""The framework floor: a bare Faust agent that only iterates its stream.

Whatever Touchpoint does on top of Faust's per-event stream machinery, a Faust worker cannot go
faster than this; the ratio against it says how much the pipeline costs on top.
"""

from __future__ import annotations

import faust
from faust.types import StreamT

from touchpoint.bench.peers import PeerConfig, Progress, faust_peer_app, run_faust_peer


def build_app(config: PeerConfig) -> faust.App:
    app = faust_peer_app(config, "floor")
    source = app.topic(*config.topics)
    progress = Progress(config.total)

    @app.agent(source, name="iterate")
    async def iterate(stream: StreamT) -> None:
        async for _ in stream:
            progress.add()

    return app


def main() -> None:
    run_faust_peer(build_app(PeerConfig.from_env()), worker_runtime=True)


if __name__ == "__main__":
    main()
