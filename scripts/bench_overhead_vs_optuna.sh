#!/usr/bin/env bash
# Ask+tell overhead of ferrotune and Optuna measured in one run, on the same loop (random
# sampler, in-memory storage, 10 float parameters, sum of squares), reported as ratios.
#
#   scripts/bench_overhead_vs_optuna.sh [N …]       (default: 1000 10000)
#
# Optuna is installed from PyPI (bench/peers/requirements.txt) into target/peers-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)

venv=target/peers-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r bench/peers/requirements.txt
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
csv=$(IFS=,; echo "${sizes[*]}")
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -q -p ferrotune --bench overhead -- "${sizes[@]}" | tee -a "$out"
"$venv/bin/python" bench/peers/optuna_overhead.py --trials "$csv" | tee -a "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$venv/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {(r["peer"], r["trials"]): r for r in rows}
for (peer, n), r in sorted(by.items()):
    if peer != "ferrotune" or ("optuna", n) not in by:
        continue
    o = by[("optuna", n)]
    print(f"{n:>7} trials: ferrotune {r['trials_per_s']:>10.0f}/s, optuna {o['trials_per_s']:>8.0f}/s "
          f"-> {r['trials_per_s'] / o['trials_per_s']:.0f}x; per-trial last/first: "
          f"ferrotune {r['us_per_trial_last'] / r['us_per_trial_first']:.2f}, "
          f"optuna {o['us_per_trial_last'] / o['us_per_trial_first']:.2f}")
PY
