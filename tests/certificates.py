"""Throwaway self-signed certificates for the tests (openssl, valid for a day)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(folder: Path, name: str, common_name: str, alt_names: str | None = None) -> tuple[Path, Path]:
    """``folder/name.pem`` and ``folder/name.key``; ``alt_names`` as openssl's subjectAltName
    (``DNS:localhost,IP:127.0.0.1``) for a server a client verifies by its address."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    extension = ["-addext", f"subjectAltName={alt_names}"] if alt_names else []
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={common_name}", *extension, "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
