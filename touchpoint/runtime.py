"""What a worker is built from, made once at start-up from the settings and handed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry

from pipeline.config import ModelConfig, load_model_config
from pipeline.decode import Decoder
from pipeline.identifiers import IdentifierPolicy
from sinks.metrics import Metrics
from touchpoint import gc_tuning
from touchpoint.event_loop import install
from touchpoint.readiness import Readiness
from touchpoint.registry import schema_lookup
from touchpoint.settings import Settings


def use_worker_runtime(settings: Settings) -> None:
    """The event loop and garbage-collector thresholds a worker runs with; called before any
    loop exists (the bench's floor and domain peers call it too, so the runtime is not what tells
    them apart from the worker)."""
    install(settings.event_loop)
    gc_tuning.apply(settings.gc_threshold)


@dataclass
class Runtime:
    settings: Settings
    model: ModelConfig
    metrics: Metrics
    decoder: Decoder
    readiness: Readiness = field(default_factory=Readiness)  # served on /readyz, updated by the worker

    @classmethod
    def create(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
        policy = identifier_policy(settings)
        return cls(
            settings=settings,
            model=load_model_config(settings.model_config or None),
            metrics=Metrics.create(registry if registry is not None else REGISTRY),
            decoder=Decoder(schema_lookup(settings), policy, max_payload_bytes=settings.max_payload_bytes),
        )


def identifier_policy(settings: Settings) -> IdentifierPolicy:
    """The deployment's identifier policy; ``touchpoint forget`` must hash exactly as ingest does."""
    return IdentifierPolicy(
        hmac_key=settings.identifier_hmac_key.encode() if settings.identifier_hmac_key else None,
        default_country_code=settings.default_country_code or None,
    )
