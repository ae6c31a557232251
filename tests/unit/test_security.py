"""Security configuration: one set of settings, the same meaning in every client, secrets never shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from touchpoint.security import (
    aiokafka_config,
    clickhouse_tls_options,
    faust_broker_credentials,
    kafka_python_config,
    kafka_ssl_context,
)
from touchpoint.settings import Settings, SettingsError, load_settings

from tests.certificates import self_signed

SECRET = "s3cr3t-synthetic-pw"


def sasl(**changes: object) -> Settings:
    base = Settings(kafka_bootstrap_servers="b1:9093, b2:9093", kafka_security_protocol="SASL_SSL",
                    kafka_sasl_username="svc-touchpoint", kafka_sasl_password=SECRET)
    return base.with_overrides(**changes)


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A throwaway self-signed certificate and key (openssl), to prove the files are loaded."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"), "client", "touchpoint-test")
    return str(cert), str(key)


def test_plaintext_is_the_default_for_every_client() -> None:
    settings = Settings(kafka_bootstrap_servers="localhost:9092")
    assert faust_broker_credentials(settings) is None
    assert aiokafka_config(settings) == {"security_protocol": "PLAINTEXT"}
    assert kafka_python_config(settings) == {"bootstrap_servers": ["localhost:9092"],
                                             "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_is_spelled_right_for_each_client() -> None:
    settings = sasl(kafka_sasl_mechanism="scram-sha-512")
    creds = faust_broker_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.username == "svc-touchpoint" and creds.password == SECRET
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert SECRET not in repr(creds)

    aio = aiokafka_config(settings)
    assert aio["security_protocol"] == "SASL_SSL" and aio["sasl_mechanism"] == "SCRAM-SHA-512"
    assert aio["sasl_plain_password"] == SECRET and isinstance(aio["ssl_context"], ssl.SSLContext)

    kp = kafka_python_config(settings)
    assert kp["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert kp["security_protocol"] == "SASL_SSL" and kp["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kp["sasl_plain_username"] == "svc-touchpoint" and kp["sasl_plain_password"] == SECRET


def test_sasl_plain_without_tls() -> None:
    settings = sasl(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN")
    creds = faust_broker_credentials(settings)
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.mechanism.value == "PLAIN"
    assert creds.ssl_context is None
    assert "ssl_context" not in aiokafka_config(settings)


def test_mutual_tls_loads_the_client_certificate(client_cert: tuple[str, str]) -> None:
    cert, key = client_cert
    settings = Settings(kafka_bootstrap_servers="b:9093", kafka_security_protocol="SSL",
                        kafka_ssl_cafile=cert, kafka_ssl_certfile=cert, kafka_ssl_keyfile=key)
    context = kafka_ssl_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert isinstance(faust_broker_credentials(settings), faust.SSLCredentials)
    kp = kafka_python_config(settings)
    assert (kp["ssl_cafile"], kp["ssl_certfile"], kp["ssl_keyfile"]) == (cert, cert, key)


@pytest.mark.parametrize("changes, message", [
    ({"kafka_security_protocol": "SASL_TLS"}, "SECURITY_PROTOCOL"),
    ({"kafka_sasl_mechanism": "GSSAPI"}, "SASL_MECHANISM"),
    ({"kafka_sasl_password": ""}, "SASL_PASSWORD"),
    ({"kafka_ssl_certfile": "/tmp/c.pem"}, "go together"),
])
def test_misconfiguration_is_refused_with_the_setting_named(changes: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        kafka_python_config(sasl(**changes))


def test_secrets_come_from_files_and_are_masked(tmp_path: Path) -> None:
    (tmp_path / "kafka").write_text(SECRET + "\n")
    (tmp_path / "ch").write_text("ch-synthetic-pw\n")
    settings = load_settings({
        "TOUCHPOINT_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "kafka"),
        "TOUCHPOINT_CLICKHOUSE_PASSWORD_FILE": str(tmp_path / "ch"),
        "TOUCHPOINT_CLICKHOUSE_USER": "touchpoint_writer",
        "TOUCHPOINT_CLICKHOUSE_URL": "clickhouses://default:@ch.internal:9440/cx",
        "TOUCHPOINT_CLICKHOUSE_CA_FILE": "/etc/ssl/ch-ca.pem",
    })
    assert settings.kafka_sasl_password == SECRET
    target = settings.clickhouse
    assert (target.user, target.password) == ("touchpoint_writer", "ch-synthetic-pw")
    shown = f"{settings!r} {settings.describe()} {target!r} {target.masked_url()}"
    assert SECRET not in shown and "ch-synthetic-pw" not in shown
    assert clickhouse_tls_options(target) == {"secure": True, "verify": True, "ca_certs": "/etc/ssl/ch-ca.pem"}


def test_clickhouse_without_tls_passes_no_tls_options() -> None:
    target = Settings(clickhouse_url="clickhouse://default:@127.0.0.1:9000/cx").clickhouse
    assert clickhouse_tls_options(target) == {"secure": False}
    unverified = Settings(clickhouse_url="clickhouses://u:p@h:9440/cx", clickhouse_verify=False).clickhouse
    assert clickhouse_tls_options(unverified) == {"secure": True, "verify": False}
