#!/usr/bin/env bash
# Check Alertmanager routing: every line of routes.cases must resolve to its expected receiver.
# Usage: deploy/alertmanager/test-routes.sh [alertmanager.yml] [routes.cases]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="${1:-$here/alertmanager.yml}"
cases="${2:-$here/routes.cases}"
command -v amtool >/dev/null || { echo "amtool not found (Debian: apt-get install prometheus-alertmanager)" >&2; exit 2; }

amtool check-config "$config" >/dev/null
failed=0
total=0
while read -r expected labels; do
    [[ -z "$expected" || "$expected" == \#* ]] && continue
    total=$((total + 1))
    # shellcheck disable=SC2086  # labels are deliberately split into words
    if got="$(amtool config routes test --config.file="$config" --verify.receivers="$expected" $labels 2>/dev/null)"; then
        echo "ok    $expected <- $labels"
    else
        echo "FAIL  expected $expected, got ${got//$'\n'/ } <- $labels"
        failed=$((failed + 1))
    fi
done < "$cases"
echo "$((total - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
