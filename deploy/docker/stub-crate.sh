#!/bin/sh
# Writes a stub crate next to the real Cargo.toml, so the image's dependency
# layer can be built from the manifest and lock file alone: an empty binary
# and library, and an empty file for every [[bench]] target (cargo refuses a
# manifest whose declared targets are missing). Used by the Dockerfile and by
# scripts/checks/docker-context.sh, which proves the stub still satisfies the
# manifest.
set -eu
mkdir -p src benches
printf 'fn main() {}\n' > src/main.rs
printf '\n' > src/lib.rs
sed -n '/^\[\[bench\]\]/{n;s/^name = "\(.*\)"/\1/p;}' Cargo.toml > /tmp/keyhook-benches
while read -r bench; do
    printf 'fn main() {}\n' > "benches/$bench.rs"
done < /tmp/keyhook-benches
