#!/usr/bin/env bash
# Runs schemathesis against a live keyhook on the local backend: every
# operation in openapi/keyhook.yaml on the main listener, and every one in
# openapi/admin.yaml on the admin listener (with a bearer token), every
# default check, a bounded number of examples per operation. Any failure
# fails the run. The server is the
# debug build the tests use; its JSON log is printed when something fails.
#
# The ReadMe webhook needs an HMAC signature schemathesis cannot make: its
# unsigned requests must get the documented 401 (Missing/Invalid Signature).
#
# Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 40), SCHEMATHESIS_SEED.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v schemathesis >/dev/null || {
    echo "schemathesis.sh: schemathesis is not installed (pip install -r scripts/requirements-test.txt)" >&2
    exit 1
}

cargo build --locked --quiet

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    local status=$?
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -s "$tmp/keyhook.log" ]; then
        echo "-- keyhook log (last 40 lines)" >&2
        tail -n 40 "$tmp/keyhook.log" >&2
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="$(free_port)"
base="http://127.0.0.1:$port"
admin_port="$(free_port)"
admin_base="http://127.0.0.1:$admin_port"
admin_token="st-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
user="schemathesis"
pass="st-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# Only what is set here: the server runs in the temp dir, so no
# config/keyhook.toml is picked up, with a clean environment.
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
keyhook="$target_dir/debug/keyhook"
cd "$tmp"
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    KEYHOOK_LISTEN="127.0.0.1:$port" \
    KEYHOOK_BACKEND=local \
    KEYHOOK_DATA_DIR="$tmp/data" \
    KEYHOOK_README_SECRET="st-readme-secret" \
    KEYHOOK_SENSEDIA_USERS="$user:$pass" \
    KEYHOOK_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    KEYHOOK_ADMIN_TOKENS="$admin_token" \
    KEYHOOK_LOG_FORMAT=json \
    RUST_LOG=info \
    "$keyhook" serve >"$tmp/keyhook.log" 2>&1 &
server_pid=$!
cd - >/dev/null

for _ in $(seq 1 100); do
    if curl -fsS "$base/healthz" >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "schemathesis.sh: keyhook exited before answering /healthz" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { echo "schemathesis.sh: keyhook did not answer /healthz" >&2; exit 1; }

cfg=(--config-file scripts/checks/schemathesis.toml)
args=(
    run openapi/keyhook.yaml
    --url "$base"
    --auth "$user:$pass"
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}"
    --request-timeout 10
    --generation-database none
    --no-color
)
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    args+=(--seed "$SCHEMATHESIS_SEED")
fi
# Every request on its own, valid and invalid data alike.
echo "-- schemathesis: examples, coverage, fuzzing (positive and negative data)"
schemathesis "${cfg[@]}" "${args[@]}" --phases examples,coverage,fuzzing
# Chains of calls (create -> update/revoke with the returned ids), valid
# data only: in negative mode schemathesis 4 reports link-filled requests
# as schema-violating even when the values it sends are valid (its issues
# #2983 and #3367), which keyhook then rightly accepts.
echo "-- schemathesis: stateful (positive data)"
schemathesis "${cfg[@]}" "${args[@]}" --phases stateful --mode positive
# The admin API on its own listener, over what the runs above left in the
# store: every request on its own, valid and invalid data alike, then
# chains (list -> rotate -> expiry/revoke) with valid data.
echo "-- schemathesis: admin listener, examples, coverage, fuzzing (positive and negative data)"
admin_args=(
    run openapi/admin.yaml
    --url "$admin_base"
    --header "Authorization: Bearer $admin_token"
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}"
    --request-timeout 10
    --generation-database none
    --no-color
)
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    admin_args+=(--seed "$SCHEMATHESIS_SEED")
fi
schemathesis "${cfg[@]}" "${admin_args[@]}" --phases examples,coverage,fuzzing
echo "-- schemathesis: admin listener, stateful (positive data)"
schemathesis "${cfg[@]}" "${admin_args[@]}" --phases stateful --mode positive
