"""Touchpoint and a Confluent-compatible Schema Registry (Karapace, Confluent): the I/O half.

Two jobs. Producers and operators register the bundled Avro schemas under ``<topic>-value``
subjects (``touchpoint schemas register``, and the generator before it sends registry-framed
Avro). Workers look writer schemas up by the id in each Confluent header
(:class:`RegistrySchemas`, a ``pipeline.schema_registry.SchemaLookup``). The HTTP client is
confluent-kafka's ``SchemaRegistryClient``; ``pipeline/`` never sees it.

A worker fetches every registered version of its subjects at start-up, so the hot path only goes
to the registry for a schema registered after the worker started, once per id.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from fastavro import parse_schema

with warnings.catch_warnings():
    # authlib, imported by the client for OAuth, warns about its own httpx module on every
    # start; its module forces that warning category to "always", so silence it after that.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

import schemas
from pipeline.model import CHANNELS
from pipeline.schema_registry import (
    EVENT_SCHEMA,
    IDENTITY_LINK_SCHEMA,
    BundledSchemas,
    SchemaLookup,
    SchemaLookupUnavailable,
)
from pipeline.synthetic import (
    EVENT_SCHEMA_ID,
    IDENTITY_LINK_SCHEMA_ID,
    IDENTITY_TOPIC,
    Scenario,
    SyntheticMessage,
)
from pipeline.wireformat import (
    ParsedSchema,
    confluent_schema_id,
    fingerprint,
    load_schema,
    to_confluent,
    with_schema_id,
)
from touchpoint.settings import Settings, SettingsError, Topics


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the client raises when the registry cannot be reached: its HTTP library's errors and
    the OS's. confluent-kafka 2.16 speaks ``httpx2`` when that is installed and ``httpx`` otherwise,
    so the errors of whichever of the two are present."""
    errors: list[type[BaseException]] = [OSError]
    for library in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(library).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()

log = logging.getLogger(__name__)

# Old and new workers and producers coexist during a rollout, and replays re-read old data:
# every version must be readable with every other one (see docs/schema-registry.md).
DEFAULT_COMPATIBILITY = "FULL_TRANSITIVE"
COMPATIBILITY_LEVELS = (
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
    "NONE",
)  # fmt: skip
HTTP_NOT_FOUND = 404
# An unknown id is asked about again after this long: it may have been registered meanwhile.
MISS_TTL_SECONDS = 30.0
MAX_REMEMBERED_MISSES = 10_000


@dataclass(frozen=True)
class Subject:
    """A registry subject Touchpoint reads, and which bundled schema belongs under it."""

    name: str
    schema_name: str
    topic: str


@dataclass(frozen=True)
class Registration:
    """What ``register_bundled`` did for one subject: the id the registry gave, the level it set."""

    subject: str
    topic: str
    schema_id: int
    compatibility: str | None


def subjects(topics: Topics) -> list[Subject]:
    """``<topic>-value`` (Confluent's TopicNameStrategy) for every channel topic and the identity topic."""
    channel_topics = [topics.channel(channel) for channel in CHANNELS]
    return [Subject(f"{topic}-value", EVENT_SCHEMA, topic) for topic in channel_topics] + [
        Subject(f"{topics.identity}-value", IDENTITY_LINK_SCHEMA, topics.identity)
    ]


def masked(url: str) -> str:
    """The URL without user and password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def connect(url: str, timeout_seconds: float = 5.0, max_retries: int = 1) -> SchemaRegistryClient:
    """A client with short timeouts and few retries: a worker must not stall long on the registry."""
    return SchemaRegistryClient(
        {"url": url, "timeout": timeout_seconds, "max.retries": max_retries, "retries.wait.ms": 200}
    )


def bundled_schema_text(schema_name: str) -> str:
    """The ``.avsc`` exactly as shipped (docs included), which is what gets registered."""
    return (schemas.AVRO_DIR / f"{schema_name}.avsc").read_text(encoding="utf-8")


def check_compatibility(level: str | None) -> None:
    """Refuse a level the registry API does not have, before anything is changed."""
    if level is not None and level not in COMPATIBILITY_LEVELS:
        raise ValueError(f"unknown compatibility level {level}; one of {', '.join(COMPATIBILITY_LEVELS)}")


def register_bundled(
    client: SchemaRegistryClient, topics: Topics, compatibility: str | None = DEFAULT_COMPATIBILITY
) -> list[Registration]:
    """Register the bundled schemas under every subject; idempotent (same schema, same id).

    ``compatibility`` is set on each subject first, so the registry checks every later version
    against it; ``None`` leaves the subjects' levels as they are. Raises ``SchemaRegistryError``
    when the registry refuses (e.g. a schema incompatible with what is registered).
    """
    check_compatibility(compatibility)
    done = []
    for subject in subjects(topics):
        if compatibility is not None:
            client.set_compatibility(subject.name, compatibility)
        schema = Schema(bundled_schema_text(subject.schema_name), "AVRO")
        schema_id = client.register_schema(subject.name, schema)
        done.append(Registration(subject.name, subject.topic, schema_id, compatibility))
    return done


class RegistryRefused(RuntimeError):
    """Registration failed: the registry is unreachable or refused a schema (say, incompatible)."""


def register_with_settings(settings: Settings, compatibility: str | None) -> list[Registration]:
    """``touchpoint schemas register``: register the bundle at the configured registry."""
    url = settings.schema_registry_url
    try:
        check_compatibility(compatibility)
    except ValueError as exc:
        raise RegistryRefused(str(exc)) from None
    try:
        return register_bundled(connect(url), settings.topics, compatibility)
    except SchemaRegistryError as exc:
        raise RegistryRefused(f"the schema registry at {masked(url)} refused: {exc}") from exc
    except TRANSPORT_ERRORS as exc:
        raise RegistryRefused(f"cannot reach the schema registry at {masked(url)}: {exc}") from exc


def _unavailable(action: str, exc: BaseException) -> SchemaLookupUnavailable:
    return SchemaLookupUnavailable(f"schema registry unavailable while {action}: {type(exc).__name__}")


class RegistrySchemas:
    """A ``SchemaLookup`` backed by a registry, with a cache of parsed schemas.

    Ids are immutable in a registry, so a parsed schema is cached for good. An id the registry
    does not know is remembered for :data:`MISS_TTL_SECONDS`, so a burst of messages with a bad id
    costs one request, not one per message. Fingerprints (single-object encoding) have no registry
    endpoint: they resolve to the bundled schemas and to any schema already fetched by id.
    """

    def __init__(
        self,
        client: SchemaRegistryClient,
        *,
        miss_ttl_seconds: float = MISS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._miss_ttl = miss_ttl_seconds
        self._clock = clock
        self._by_id: dict[int, ParsedSchema] = {}
        self._by_fingerprint: dict[bytes, ParsedSchema] = {}
        self._misses: dict[int, float] = {}
        for name in (EVENT_SCHEMA, IDENTITY_LINK_SCHEMA):
            bundled = load_schema(name)
            self._by_fingerprint[fingerprint(bundled)] = bundled
        self.fetches = 0  # registry round trips for single ids, for tests and diagnostics

    def warm(self, subject_names: Iterable[str]) -> int:
        """Fetch every version of these subjects; returns how many schemas are cached.

        A subject nobody registered yet is skipped (JSON-only producers need none). Raises
        :class:`SchemaLookupUnavailable` when the registry cannot be reached.
        """
        for name in subject_names:
            try:
                versions = self._client.get_versions(name)
            except SchemaRegistryError as exc:
                if exc.http_status_code == HTTP_NOT_FOUND:
                    continue
                raise _unavailable(f"listing versions of {name}", exc) from exc
            except TRANSPORT_ERRORS as exc:
                raise _unavailable(f"listing versions of {name}", exc) from exc
            for version in versions:
                try:
                    registered: RegisteredSchema = self._client.get_version(name, version)
                except (SchemaRegistryError, *TRANSPORT_ERRORS) as exc:
                    raise _unavailable(f"fetching {name} version {version}", exc) from exc
                if registered.schema_id is not None and registered.schema is not None:
                    self._remember(registered.schema_id, registered.schema)
        return len(self._by_id)

    def by_id(self, schema_id: int) -> ParsedSchema | None:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        now = self._clock()
        if self._misses.get(schema_id, 0.0) > now:
            return None
        self.fetches += 1
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == HTTP_NOT_FOUND:
                self._miss(schema_id, now)
                return None
            raise _unavailable(f"fetching schema id {schema_id}", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise _unavailable(f"fetching schema id {schema_id}", exc) from exc
        parsed = self._remember(schema_id, schema)
        if parsed is None:
            self._miss(schema_id, now)
        return parsed

    def by_fingerprint(self, fp: bytes) -> ParsedSchema | None:
        return self._by_fingerprint.get(fp)

    def _remember(self, schema_id: int, schema: Schema) -> ParsedSchema | None:
        """Parse and cache an Avro schema; None for other schema types or unparseable text."""
        if (schema.schema_type or "AVRO").upper() != "AVRO" or not schema.schema_str:
            log.warning("schema id %d is not an Avro schema; messages using it are dead letters", schema_id)
            return None
        try:
            parsed = parse_schema(json.loads(schema.schema_str))
        except Exception as exc:  # noqa: BLE001 - fastavro raises several types for a bad schema
            log.warning("schema id %d does not parse as Avro (%s)", schema_id, type(exc).__name__)
            return None
        self._by_id[schema_id] = parsed
        self._by_fingerprint.setdefault(fingerprint(parsed), parsed)
        return parsed

    def _miss(self, schema_id: int, now: float) -> None:
        if len(self._misses) >= MAX_REMEMBERED_MISSES:
            self._misses = {key: until for key, until in self._misses.items() if until > now}
            if len(self._misses) >= MAX_REMEMBERED_MISSES:
                self._misses.clear()
        self._misses[schema_id] = now + self._miss_ttl


def registry_lookup(url: str, topics: Topics) -> RegistrySchemas:
    """The worker's lookup: connected and warmed with the subjects of its topics.

    Raises :class:`SchemaLookupUnavailable` (naming the URL without credentials) when the
    registry cannot be reached, so a worker does not start half-configured.
    """
    lookup = RegistrySchemas(connect(url))
    try:
        cached = lookup.warm(subject.name for subject in subjects(topics))
    except SchemaLookupUnavailable as exc:
        raise SchemaLookupUnavailable(f"{exc} (TOUCHPOINT_SCHEMA_REGISTRY_URL={masked(url)})") from exc
    log.info("schema registry %s: %d schema versions cached", masked(url), cached)
    return lookup


def schema_lookup(settings: Settings) -> SchemaLookup:
    """What a worker decodes with: the registry when ``schema_registry_url`` is set, else the bundle."""
    if not settings.schema_registry_url:
        return BundledSchemas()
    try:
        return registry_lookup(settings.schema_registry_url, settings.topics)
    except SchemaLookupUnavailable as exc:
        raise SettingsError(f"cannot use the schema registry: {exc}") from exc


def frame_scenario(scenario: Scenario, settings: Settings, avro_only: bool) -> Scenario:
    """``touchpoint generate``: frames that a worker with the same settings can decode.

    With a registry configured, the bundle is registered (without touching compatibility levels)
    and its ids used; without one, ``avro_only`` uses the bundled ids the bundled lookup knows.
    """
    prefix = settings.topic_prefix
    if settings.schema_registry_url:
        registrations = register_with_settings(settings, compatibility=None)
        ids = {done.topic: done.schema_id for done in registrations}
    elif avro_only:
        bundled = {EVENT_SCHEMA: EVENT_SCHEMA_ID, IDENTITY_LINK_SCHEMA: IDENTITY_LINK_SCHEMA_ID}
        ids = {subject.topic: bundled[subject.schema_name] for subject in subjects(settings.topics)}
    else:
        return scenario
    return frame_for_registry(scenario, prefix, ids, avro_only)


def frame_for_registry(scenario: Scenario, topic_prefix: str, ids: Mapping[str, int], avro_only: bool) -> Scenario:
    """The scenario with its Confluent frames carrying registry ids (``ids``: topic -> schema id).

    The synthetic generator frames with the bundled ids (1 and 2), which mean nothing to a live
    registry. Framed messages are renumbered (broken ones too, so they stay broken for the same
    reason); with ``avro_only`` every valid message becomes registry-framed Avro. Invalid JSON
    stays as it is, so the manifest's dead-letter counts still hold.
    """
    messages = [_framed(m, ids[f"{topic_prefix}.{m.topic}"], avro_only) for m in scenario.messages]
    return Scenario(messages, scenario.manifest)


def _framed(message: SyntheticMessage, schema_id: int, avro_only: bool) -> SyntheticMessage:
    is_link = message.topic == IDENTITY_TOPIC
    if message.valid and avro_only:
        schema = load_schema(IDENTITY_LINK_SCHEMA if is_link else EVENT_SCHEMA)
        return replace(message, value=to_confluent(message.value, schema_id, schema))
    if confluent_schema_id(message.value) == (IDENTITY_LINK_SCHEMA_ID if is_link else EVENT_SCHEMA_ID):
        return replace(message, value=with_schema_id(message.value, schema_id))
    return message
