"""Log output: JSON lines or text, never a secret or a raw identifier."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from touchpoint.logs import Redactor, configure_logging, secret_values
from touchpoint.settings import Settings, SettingsError

SETTINGS = Settings(clickhouse_url="clickhouse://writer:ch-pass-42@db:9000/cx",
                    identifier_hmac_key="hmac-key-secret", kafka_sasl_password="sasl-pass-7")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def log_once(settings: Settings, *args: object, exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    configure_logging(settings, stream)
    logger = logging.getLogger("touchpoint.test")
    if exc is None:
        logger.warning(*args)
    else:
        try:
            raise exc
        except type(exc):
            logger.exception(*args)
    return stream.getvalue()


def test_json_lines_carry_level_logger_and_message() -> None:
    out = log_once(SETTINGS.with_overrides(log_format="json"), "flushed %d rows to %s", 12, "touchpoints")
    entry = orjson.loads(out)
    assert entry["level"] == "warning" and entry["logger"] == "touchpoint.test"
    assert entry["message"] == "flushed 12 rows to touchpoints"
    assert entry["time"].endswith("+00:00")
    assert out.count("\n") == 1


def test_exceptions_stay_on_one_json_line_and_are_redacted() -> None:
    out = log_once(SETTINGS.with_overrides(log_format="json"), "insert failed",
                   exc=RuntimeError("auth failed for writer:ch-pass-42"))
    entry = orjson.loads(out)
    assert "RuntimeError" in entry["exception"] and "ch-pass-42" not in out
    assert out.count("\n") == 1


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_and_identifiers_never_reach_the_output(fmt: str) -> None:
    message = ("url clickhouse://writer:ch-pass-42@db:9000/cx key hmac-key-secret sasl sasl-pass-7 "
               "mail Someone.Else@example.invalid phone +44 20 7946 0000 key email:a@b.example "
               "device_id:dev-123 at 1763000000000 customer cust-17")
    out = log_once(SETTINGS.with_overrides(log_format=fmt), message)
    for leaked in ("ch-pass-42", "hmac-key-secret", "sasl-pass-7", "Someone.Else", "7946", "dev-123", "a@b"):
        assert leaked not in out
    assert "<email>" in out and "<phone>" in out and "device_id:<redacted>" in out
    assert "1763000000000" in out and "cust-17" in out  # timestamps and customer ids stay readable


def test_text_format_and_auto_on_a_pipe() -> None:
    assert log_once(SETTINGS.with_overrides(log_format="text"), "hello").split(" ", 2)[2] == "WARNING touchpoint.test: hello\n"
    assert orjson.loads(log_once(SETTINGS, "hello"))["message"] == "hello"  # auto: not a terminal -> json


def test_unknown_format_is_refused() -> None:
    with pytest.raises(SettingsError, match="TOUCHPOINT_LOG_FORMAT"):
        configure_logging(SETTINGS.with_overrides(log_format="xml"), io.StringIO())


def test_secret_values_include_the_url_password_and_skip_tiny_ones() -> None:
    assert {"ch-pass-42", "hmac-key-secret", "sasl-pass-7"} <= set(secret_values(SETTINGS))
    assert Redactor(["ab"])("tab") == "tab"


def test_kafka_python_connection_chatter_is_hidden_unless_debugging() -> None:
    kafka = logging.getLogger("kafka.net.connection")
    for level, shown in (("info", ["warning"]), ("debug", ["info", "warning"])):
        stream = io.StringIO()
        configure_logging(SETTINGS.with_overrides(log_format="json", log_level=level), stream)
        kafka.info("Connected")
        kafka.warning("Connection refused")
        assert [orjson.loads(line)["level"] for line in stream.getvalue().splitlines()] == shown
    logging.getLogger("kafka").setLevel(logging.NOTSET)
