#!/usr/bin/env bash
# The image's dependency stage sees only what .dockerignore lets through plus
# the stub crate: prove cargo accepts that manifest (no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp Cargo.toml Cargo.lock "$context/"
repo=$PWD
# `cargo check` parses every declared target (metadata and tree do not); the
# shared target dir already holds the dependencies from clippy, so it is quick.
(cd "$context" && sh "$repo/deploy/docker/stub-crate.sh" \
    && CARGO_TARGET_DIR="$repo/target" cargo check --locked --quiet --bin keyhook)
grep -qx '!deploy/docker/stub-crate.sh' .dockerignore
echo "docker-context: the dependency stage's manifest and stubs are consistent"
