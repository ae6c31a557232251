"""An in-process stand-in for a Confluent-compatible Schema Registry, over real HTTP.

It implements the subset of the REST API that confluent-kafka's ``SchemaRegistryClient`` uses
for Touchpoint: register a version, fetch a schema by id, list and fetch a subject's versions,
and per-subject compatibility config. Like the real thing, ids are global and stable: the same
schema text gets the same id under every subject. It does not check compatibility itself (the
tests check evolution with fastavro; Karapace enforces the level in the compose stack).

``unavailable = True`` makes every request answer 503, to simulate an outage.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class FakeSchemaRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id of each version
        self.compatibility: dict[str, str] = {}
        self.global_compatibility = "BACKWARD"
        self.unavailable = False
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeSchemaRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the API ----------------------------------------------------------------------------------

    def register(self, subject: str, schema: str) -> int:
        with self._lock:
            canonical = json.dumps(json.loads(schema), sort_keys=True)
            schema_id = next((i for i, text in self.schemas.items() if text == canonical), None)
            if schema_id is None:
                schema_id = max(self.schemas, default=0) + 1
                self.schemas[schema_id] = canonical
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        match parts:
            case ["subjects", subject, "versions"] if method == "POST":
                if body.get("schemaType", "AVRO") != "AVRO":
                    return 422, {"error_code": 42201, "message": "only AVRO in this fake"}
                return 200, {"id": self.register(subject, body["schema"])}
            case ["subjects"] if method == "GET":
                return 200, sorted(self.subjects)
            case ["subjects", subject, "versions"] if method == "GET":
                if subject not in self.subjects:
                    return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
                return 200, list(range(1, len(self.subjects[subject]) + 1))
            case ["subjects", subject, "versions", version] if method == "GET":
                versions = self.subjects.get(subject)
                if not versions:
                    return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
                number = len(versions) if version == "latest" else int(version)
                if not 1 <= number <= len(versions):
                    return 404, {"error_code": 40402, "message": "Version not found."}
                schema_id = versions[number - 1]
                return 200, {"subject": subject, "version": number, "id": schema_id,
                             "schema": self.schemas[schema_id]}
            case ["schemas", "ids", schema_id] if method == "GET":
                text = self.schemas.get(int(schema_id))
                if text is None:
                    return 404, {"error_code": 40403, "message": "Schema not found"}
                return 200, {"schema": text}
            case ["config", subject] if method == "PUT":
                self.compatibility[subject] = body["compatibility"]
                return 200, {"compatibility": body["compatibility"]}
            case ["config", subject] if method == "GET":
                level = self.compatibility.get(subject, self.global_compatibility)
                return 200, {"compatibilityLevel": level}
            case ["config"] if method == "PUT":
                self.global_compatibility = body["compatibility"]
                return 200, {"compatibility": body["compatibility"]}
        return 404, {"error_code": 404, "message": f"{method} {path} is not in this fake"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                path = urlsplit(self.path).path
                registry.requests.append((method, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if registry.unavailable:
                    status, payload = 503, {"error_code": 50301, "message": "unavailable"}
                else:
                    status, payload = registry._route(method, path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def log_message(self, *args: object) -> None:
                pass

        return Handler

