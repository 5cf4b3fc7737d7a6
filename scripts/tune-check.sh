#!/usr/bin/env bash
# Checks the tuner against a full grid of the same space, for each objective:
#   scripts/tune-check.sh SCENARIO GRID_RESULTS OUT_PREFIX [OBJECTIVE...]
# e.g. scripts/tune-check.sh scenarios/cpu-grid.toml results/2026-11-21-vm-cpu-grid \
#        results/2026-11-22-vm-cpu-grid-tune
# runs `lmtune tune SCENARIO --objective O --against GRID_RESULTS` into
# OUT_PREFIX-O/ (tg, pp and balanced unless objectives are given) and prints
# each run's check: the recommendation against the grid's best, measured back
# to back, and the tuner's measuring time as a share of the grid's. Each
# run's tune.json holds the same figures for scripts. CHECK_ROUNDS=N sets the
# back-to-back rounds of the check (default 3; more narrows its interval).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
scenario=$1 grid=$2 prefix=$3
shift 3
objectives=("$@")
[ ${#objectives[@]} -gt 0 ] || objectives=(tg pp balanced)
lmtune=${LMTUNE:-target/release/lmtune}
[ -x "$lmtune" ] || cargo build --release --locked
for o in "${objectives[@]}"; do
    echo "== $scenario, objective $o"
    "$lmtune" tune "$scenario" --objective "$o" --against "$grid" --out "$prefix-$o" \
        --check-rounds "${CHECK_ROUNDS:-3}" \
        | sed -n '/^recommended/,$p'
done
