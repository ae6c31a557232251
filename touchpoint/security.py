"""Every Kafka and ClickHouse client's security configuration, built in one place from Settings.

Three Kafka clients talk to the broker: Faust (aiokafka underneath) in the worker, kafka-python in
the generator and the topic admin, and aiokafka directly. Each spells SASL and TLS differently;
these builders translate the one set of settings (``TOUCHPOINT_KAFKA_SECURITY_PROTOCOL`` and
friends, secrets also from ``..._FILE``) so the clients cannot drift apart. Nothing here logs a
value: credentials stay inside the returned objects.
"""

from __future__ import annotations

import ssl
from typing import Any

from touchpoint.settings import ClickHouseTarget, Settings, SettingsError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _protocol(settings: Settings) -> str:
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(f"TOUCHPOINT_KAFKA_SECURITY_PROTOCOL: expected one of {', '.join(PROTOCOLS)}, "
                            f"got {settings.kafka_security_protocol!r}")
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism.upper() not in SASL_MECHANISMS:
            raise SettingsError(f"TOUCHPOINT_KAFKA_SASL_MECHANISM: expected one of {', '.join(SASL_MECHANISMS)}, "
                                f"got {settings.kafka_sasl_mechanism!r}")
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise SettingsError("TOUCHPOINT_KAFKA_SASL_USERNAME and TOUCHPOINT_KAFKA_SASL_PASSWORD "
                                f"(or _FILE) are required with {protocol}")
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise SettingsError("TOUCHPOINT_KAFKA_SSL_CERTFILE and TOUCHPOINT_KAFKA_SSL_KEYFILE go together")
    return protocol


def _uses_tls(protocol: str) -> bool:
    return protocol in ("SSL", "SASL_SSL")


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (system CAs unless a CA file is set), else None."""
    if not _uses_tls(_protocol(settings)):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def faust_broker_credentials(settings: Settings) -> Any:
    """``faust.App(broker_credentials=...)``: SASLCredentials, SSLCredentials, or None for PLAINTEXT."""
    import faust

    protocol = _protocol(settings)
    context = kafka_ssl_context(settings)
    if protocol.startswith("SASL"):
        # faust picks SASL_SSL when a context is given, SASL_PLAINTEXT when not
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism.upper(),
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client (what faust passes it, for direct use)."""
    protocol = _protocol(settings)
    config: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if protocol.startswith("SASL"):
        config.update(sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    return config


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    protocol = _protocol(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": [server.strip() for server in settings.kafka_bootstrap_servers.split(",")],
        "security_protocol": protocol,
    }
    if _uses_tls(protocol):
        config["ssl_check_hostname"] = True
        if settings.kafka_ssl_cafile:
            config["ssl_cafile"] = settings.kafka_ssl_cafile
        if settings.kafka_ssl_certfile:
            config.update(ssl_certfile=settings.kafka_ssl_certfile, ssl_keyfile=settings.kafka_ssl_keyfile)
    if protocol.startswith("SASL"):
        config.update(sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password)
    return config


def clickhouse_tls_options(target: ClickHouseTarget) -> dict[str, Any]:
    """clickhouse-driver Client keyword arguments for TLS (none unless the target is secure)."""
    if not target.secure:
        return {"secure": False}
    options: dict[str, Any] = {"secure": True, "verify": target.verify}
    if target.ca_certs:
        options["ca_certs"] = target.ca_certs
    return options
