#!/usr/bin/env bash
# Puts Debian bookworm's promtool (from the `prometheus` package) under $PGHA_CACHE/promtool
# for the unit tests that check and test the alert rules (tests/unit/test_alert_rules.py).
# Why not apt-get install: that would start a Prometheus server on the host; the binary
# alone is all the tests need, so the .deb is downloaded and unpacked, never installed.
# Idempotent: a second run only checks that the binary runs.
set -euo pipefail
CACHE_DIR=${PGHA_CACHE:-$HOME/.cache/pgha}
DEST="$CACHE_DIR/promtool"
if [ -x "$DEST/usr/bin/promtool" ] && "$DEST/usr/bin/promtool" --version >/dev/null 2>&1; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download prometheus >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null && (cd "$work" && apt-get download prometheus >/dev/null)
}
rm -rf "$DEST" && mkdir -p "$DEST"
dpkg -x "$work"/prometheus_*.deb "$DEST"
"$DEST/usr/bin/promtool" --version >/dev/null
echo "ensure-promtool: $DEST/usr/bin/promtool" >&2
