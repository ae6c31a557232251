"""The worker's HTTP port: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for orchestrators.

``/metrics?name[]=cx_events_processed_total`` exposes only the series named (the bench's
progress probe, once a second, uses it).

``/healthz`` answers 200 while the process can serve HTTP at all (liveness: restart me if not);
``/readyz`` answers 200 or 503 from a callable the worker passes in (readiness: send me traffic
or not), with the reasons in the body. One small threaded server, so probes never wait on a
scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadyCheck = Callable[[], tuple[bool, list[str]]]


def serve_endpoints(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0",
                    ready: ReadyCheck | None = None) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; ``ready`` None means ready whenever alive."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            url = urlsplit(self.path)
            path = url.path
            if path == "/metrics":
                # ?name[]=...: only these series, as prometheus_client's own handler allows (a
                # progress probe need not pay for the whole exposition)
                names = parse_qs(url.query).get("name[]")
                source = registry.restricted_registry(names) if names else registry
                self._reply(200, generate_latest(source), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                is_ready, reasons = ready() if ready is not None else (True, [])
                body = "ready\n" if is_ready else "not ready: " + "; ".join(reasons) + "\n"
                self._reply(200 if is_ready else 503, body.encode())
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Probes every few seconds would flood the log; errors still surface as status codes."""

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http-endpoints", daemon=True).start()
    return server
