#!/usr/bin/env bash
# Container HEALTHCHECK for keyhook: no curl in the image, so it speaks HTTP
# through bash's /dev/tcp. Succeeds when GET /healthz answers 200.
# With in-process TLS (KEYHOOK_TLS_CERT set) it can only check that the port
# accepts connections.
set -euo pipefail

listen="${KEYHOOK_LISTEN:-127.0.0.1:8080}"
port="${listen##*:}"
host=127.0.0.1

exec 3<>"/dev/tcp/${host}/${port}"
if [ -n "${KEYHOOK_TLS_CERT:-}${KEYHOOK_TLS_CERT_FILE:-}" ]; then
    exit 0
fi
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 3 status <&3
case "$status" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) echo "unhealthy: ${status%$'\r'}" >&2; exit 1 ;;
esac
