"""Log output for people (text) and for log shippers (one JSON object per line).

Both formats go through the same redaction, because a log line is the easiest place for a
secret or a customer's identifier to leak: configured secrets (passwords, the HMAC key, URLs
with credentials) become ``***``, e-mail addresses ``<email>``, international phone numbers
``<phone>``, and an identifier key such as ``email:...`` keeps its type only. Customer ids are
business keys and stay readable.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

import orjson

from touchpoint.settings import ClickHouseTarget, Settings, SettingsError

FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words everywhere

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])\+[1-9][0-9 ().-]{6,18}[0-9]")
_IDENTIFIER_KEY = re.compile(r"\b(anonymous_id|device_id|phone|email|loyalty_id):[^\s,;\"'}\]]+")


class Redactor:
    """Masks secrets and identifiers in a string; built once from the settings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a URL is masked whole before the password inside it.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _IDENTIFIER_KEY.sub(lambda m: f"{m.group(1)}:<redacted>", text)
        text = _EMAIL.sub("<email>", text)
        return _PHONE.sub("<phone>", text)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret: the masked settings and the password inside the ClickHouse URL."""
    values = [str(getattr(settings, f.name)) for f in dataclasses.fields(settings)
              if not f.repr and getattr(settings, f.name)]
    if settings.clickhouse_url:
        try:
            values.append(ClickHouseTarget.from_url(settings.clickhouse_url).password)
        except SettingsError:
            pass  # an unusable URL is reported by the command that needs it, and stays masked whole
    return values


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO-8601), level, logger, message, exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class RedactingTextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Route every logger (Faust's included) through one redacting handler on stderr."""
    if settings.log_format not in FORMATS:
        raise SettingsError(f"TOUCHPOINT_LOG_FORMAT: expected one of {', '.join(FORMATS)}, got {settings.log_format!r}")
    stream = stream if stream is not None else sys.stderr
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not stream.isatty())
    redact = Redactor(secret_values(settings))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redact) if use_json else RedactingTextFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # kafka-python (the admin client, generators, the demo's producer) logs every connection it
    # opens and closes at info: dozens of lines around each command. Its warnings still show, and
    # TOUCHPOINT_LOG_LEVEL=debug shows everything.
    logging.getLogger("kafka").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    return handler
