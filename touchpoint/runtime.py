"""What a worker is built from, made once at start-up from the settings and handed down."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry

from pipeline.config import ModelConfig, load_model_config
from pipeline.decode import Decoder
from pipeline.identifiers import IdentifierPolicy
from pipeline.schema_registry import BundledSchemas
from sinks.metrics import Metrics
from touchpoint.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    model: ModelConfig
    metrics: Metrics
    decoder: Decoder

    @classmethod
    def create(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
        policy = IdentifierPolicy(
            hmac_key=settings.identifier_hmac_key.encode() if settings.identifier_hmac_key else None,
            default_country_code=settings.default_country_code or None,
        )
        return cls(
            settings=settings,
            model=load_model_config(settings.model_config or None),
            metrics=Metrics.create(registry if registry is not None else REGISTRY),
            decoder=Decoder(BundledSchemas(), policy, max_payload_bytes=settings.max_payload_bytes),
        )
