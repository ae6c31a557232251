#!/usr/bin/env bash
# Install everything Touchpoint needs on a fresh machine; safe to run again (it skips what is there).
#   - Debian packages for the real local servers: ClickHouse, Prometheus + promtool, Alertmanager
#     + amtool, kcat, docker-compose (to validate the compose file). Needs root; skipped otherwise
#     with a note.
#   - A virtualenv in .venv with the project and its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(clickhouse-server clickhouse-client prometheus prometheus-alertmanager kcat docker-compose)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: missing Debian packages ${missing[*]} (run as root, or install them)" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.touchpoint-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing the Python packages into .venv" >&2
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
fi
