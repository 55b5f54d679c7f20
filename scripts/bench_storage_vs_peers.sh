#!/usr/bin/env bash
# Storage throughput of ferrotune against Optuna 5.0.0 and Rustuna 0.2.0 (pinned in
# bench/peers/requirements.txt, from PyPI),
# measured in one run on this machine: ask + 10 floats + 10 reports + tell with the random
# sampler, 1 and 8 processes, on SQLite, on PostgreSQL (the same throwaway server for every
# peer) and Optuna's/Rustuna's journal file; then the ratios.
#
#   scripts/bench_storage_vs_peers.sh [TRIALS]      (default 300; peers on SQLite are slow)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
if [[ -z "${FERROTUNE_TEST_POSTGRES_URL:-}" ]]; then
    # Start a throwaway PostgreSQL (as the tests do) and run this script inside it.
    exec env FERROTUNE_WITH_POSTGRES="$0 $n" scripts/test.sh
fi
venv=target/peers-venv
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet -r bench/peers/requirements.txt psycopg2-binary==2.9.13
out=target/bench-storage.jsonl
: >"$out"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -q -p ferrotune-sqlite --bench throughput -- "$n" | tee -a "$out"
cargo bench -q -p ferrotune-postgres --bench throughput -- "$n" | tee -a "$out"
"$venv/bin/python" bench/peers/storage_throughput.py \
    --storage sqlite,journal,postgres --peer all --processes 1,8 --trials "$n" | tee -a "$out"
"$venv/bin/python" bench/peers/storage_throughput.py \
    --storage sqlite --peer all --tpe-history 1000 | tee -a "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$venv/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = {}
for r in rows:
    if r.get("peer") == "ferrotune" and r.get("synchronous", "normal") == "normal":
        ours[(r["storage"], r["processes"])] = r["trials_per_s"]
for r in rows:
    if r.get("peer") == "ferrotune" or "trials_per_s" not in r or r.get("mode") == "tpe_ask_at_history":
        continue
    # Peers' journal files are compared with our SQLite (both are embedded single files).
    key = ("sqlite" if r["storage"] in ("sqlite", "journal") else r["storage"], r["processes"])
    if key in ours and r["trials_per_s"]:
        print(f'{r["peer"]:>8} {r["storage"]:>8} P={r["processes"]}: {r["trials_per_s"]:9.1f}/s '
              f'(reports {r.get("reports_per_trial")}) -> ferrotune {key[0]} {ours[key]:9.1f}/s = '
              f'{ours[key] / r["trials_per_s"]:.1f}x')
PY
