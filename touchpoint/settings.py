"""One settings object, built once at start-up from the environment and an optional file.

Every knob has an environment variable ``TOUCHPOINT_<NAME>`` and the same lower-case key in the
YAML file named by ``TOUCHPOINT_CONFIG``; the environment wins. Secrets (passwords, HMAC keys)
can also be read from a file (``TOUCHPOINT_<NAME>_FILE``) and never appear in ``repr`` or logs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import yaml

from touchpoint.gc_tuning import parse_threshold

EVENT_LOOPS = ("uvloop", "asyncio")

ENV_PREFIX = "TOUCHPOINT_"


class SettingsError(ValueError):
    """A setting has a value Touchpoint cannot use; the message names the setting."""


@dataclass(frozen=True)
class ClickHouseTarget:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    secure: bool = False
    ca_certs: str = ""  # CA bundle that signs the server's certificate (secure only)
    verify: bool = True  # check the server's certificate (secure only)

    @classmethod
    def from_url(cls, url: str) -> ClickHouseTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise SettingsError(
                "TOUCHPOINT_CLICKHOUSE_URL: expected clickhouse://user:password@host:port/database"
            )
        database = parts.path.lstrip("/") or "cx"
        if not database.replace("_", "").isalnum():
            raise SettingsError(f"TOUCHPOINT_CLICKHOUSE_URL: database name {database!r} is not a plain identifier")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 9000,
            database=database,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=parts.scheme == "clickhouses" or "secure=1" in parts.query,
        )

    def masked_url(self) -> str:
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.user}:***@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Topics:
    """All topic names in one place, derived from one prefix unless set one by one."""

    prefix: str = "touchpoints"

    def channel(self, channel: str) -> str:
        return f"{self.prefix}.{'calls' if channel == 'call' else channel}"

    @property
    def identity(self) -> str:
        return f"{self.prefix}.identity"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def identifiers(self) -> str:
        """Internal: anonymous events and links, keyed by identifier."""
        return f"{self.prefix}.identifiers"

    @property
    def customers(self) -> str:
        """Internal: attributed events, keyed by customer key."""
        return f"{self.prefix}.customers"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = ""
    # May carry basic-auth credentials (https://user:pass@host), hence masked like a secret.
    schema_registry_url: str = field(default="", repr=False)
    clickhouse_url: str = field(default="", repr=False)
    metrics_port: int = 9108
    topic_prefix: str = "touchpoints"
    partitions: int = 4
    app_id: str = "touchpoint"
    data_dir: str = ".touchpoint"
    model_config: str = ""
    sink_batch_rows: int = 20000
    sink_flush_seconds: float = 0.5
    max_payload_bytes: int = 65536
    identifier_hmac_key: str = field(default="", repr=False)
    default_country_code: str = ""
    session_timeout_seconds: float = 10.0
    # How long a fetch may wait at the broker for records (Faust hard-codes 1500 ms). A broker that
    # holds an empty fetch for the whole wait even when records arrive (Tansu does) adds that much
    # to every hop through an internal topic; Apache Kafka answers as soon as records arrive.
    fetch_max_wait_ms: int = 100
    # The worker's event loop: "uvloop" (less CPU per event) or "asyncio" (see touchpoint/event_loop.py).
    event_loop: str = "uvloop"
    # The worker's garbage-collector thresholds (see touchpoint/gc_tuning.py); "700,10,10" is CPython's default.
    gc_threshold: str = "500000,20,100"
    log_level: str = "info"
    # Alertmanager base URL (http://host:9093) the rule engine's alerts are pushed to via its v2
    # API (sinks/alertmanager.py); empty: no push (alerts still go to Kafka, ClickHouse, metrics).
    alertmanager_url: str = ""
    # "json" (one object per line, for log shippers), "text", or "auto": text on a terminal, else json.
    log_format: str = "auto"
    # SIGTERM: how long the worker may take to flush pending rows and commit before it must exit.
    shutdown_grace_seconds: float = 30.0
    # UNSAFE, for the fault-injection suite's negative control only: acknowledge events when their
    # rows are buffered instead of after the ClickHouse insert, so a crash loses them.
    unsafe_ack_before_write: bool = False
    # Kafka security (touchpoint/security.py builds every client's config from these).
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"  # or SCRAM-SHA-256, PLAIN
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    # ClickHouse credentials and TLS; user and password override the URL's when set.
    clickhouse_user: str = ""
    clickhouse_password: str = field(default="", repr=False)
    clickhouse_ca_file: str = ""
    clickhouse_verify: bool = True

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def clickhouse(self) -> ClickHouseTarget:
        if not self.clickhouse_url:
            raise SettingsError("TOUCHPOINT_CLICKHOUSE_URL is not set")
        target = ClickHouseTarget.from_url(self.clickhouse_url)
        return dataclasses.replace(
            target,
            user=self.clickhouse_user or target.user,
            password=self.clickhouse_password or target.password,
            ca_certs=self.clickhouse_ca_file,
            verify=self.clickhouse_verify,
        )

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The settings as an operator may see them: secrets masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "clickhouse_url" and value:
                value = ClickHouseTarget.from_url(value).masked_url()
            elif not f.repr and value:
                value = "***"
            out[f.name] = value
        return out


def _coerce(name: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return str(raw).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{ENV_PREFIX}{name.upper()}: expected {type(default).__name__}, got {raw!r}"
        ) from None
    return str(raw)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    config_path = environ.get(f"{ENV_PREFIX}CONFIG")
    if config_path:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"{ENV_PREFIX}CONFIG: cannot read {config_path}: {exc.strerror}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"{ENV_PREFIX}CONFIG: {config_path} must hold a mapping of settings")
        file_values = loaded
    defaults = Settings()
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise SettingsError(f"{ENV_PREFIX}CONFIG: unknown settings {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in known:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        raw: Any = None
        if env_name in environ:
            raw = environ[env_name]
        elif f"{env_name}_FILE" in environ:
            raw = Path(environ[f"{env_name}_FILE"]).read_text().strip()
        elif name in file_values:
            raw = file_values[name]
        if raw is not None:
            values[name] = _coerce(name, raw, getattr(defaults, name))
    settings = Settings(**values)
    if settings.partitions < 1:
        raise SettingsError(f"{ENV_PREFIX}PARTITIONS: must be at least 1")
    if settings.fetch_max_wait_ms < 1:
        raise SettingsError(f"{ENV_PREFIX}FETCH_MAX_WAIT_MS: must be at least 1")
    try:
        parse_threshold(settings.gc_threshold)
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}GC_THRESHOLD: {exc}") from None
    if settings.event_loop not in EVENT_LOOPS:
        raise SettingsError(f"{ENV_PREFIX}EVENT_LOOP: must be one of {', '.join(EVENT_LOOPS)}, not {settings.event_loop!r}")
    return settings
