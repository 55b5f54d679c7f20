#!/usr/bin/env bash
# The multi-fidelity comparison behind bench/RESULTS.md ("Pruners"): ferrotune's pruners
# (median, successive halving / ASHA, Hyperband) with random search and TPE against Optuna
# 5.0.0's (PyPI, pinned in bench/peers/requirements.txt), on simulated workers: every trial
# step takes its modelled cost on a simulated clock, every problem is evaluated by the same
# Rust code for both frameworks, and the records repeat bit for bit.
#
#   scripts/bench_pruners_vs_peers.sh [DATA_DIR]    (default: $FERROTUNE_BENCH_DATA or ../shared/data)
#
# Two parts:
#   peers    10 seeds, 30 full-fidelity equivalents, 1 and 16 workers: ferrotune's and
#            Optuna's pruners, first with random search on both sides, then each one's TPE.
#   speedup  10 seeds, 300 full-fidelity equivalents, 16 workers, ferrotune only: how much
#            sooner TPE with ASHA reaches random search's final value than random search,
#            with pruned trials in TPE's model (the default, Optuna's rule) and without
#            (tpe-complete-only), and BOHB's model with the same pruners (bohb).
# Resumable (each part appends to target/bench/mf-*.jsonl and skips runs already there). The
# problems are split over two processes (JOBS=1 for one). With the LCBench surrogate
# (feature `lcbench`, tract-onnx) the whole comparison takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${FERROTUNE_BENCH_DATA:-../shared/data}}
out=target/bench
mkdir -p "$out"

venv=target/peers-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r bench/peers/requirements.txt
cargo build --release -q -p ferrotune-bench --features lcbench
bench=target/release/ferrotune-bench

synthetic=mfh3_good,mfh6_good,mfh6_bad,branin_mf,lc_hartmann6,counting_ones_8,counting_ones_32
real=digits_net,lcbench_3945,lcbench_7593,lcbench_34539,lcbench_126025,lcbench_146212,lcbench_167104
pruners='nop;median;successive_halving;hyperband'

# Runs `simulate` for each comma list of problems in its own process (two at a time).
in_parallel() {
  local part=$1; shift
  local -a lists=("$@") pids=()
  local i
  for i in "${!lists[@]}"; do
    "${simulate_args[@]}" --problems "${lists[$i]}" --out "$out/mf-$part-$i.jsonl" \
      > /dev/null &
    pids+=($!)
    if (( ${#pids[@]} >= ${JOBS:-2} )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  wait
}

simulate_args=($bench simulate --data "$data" --samplers 'random;tpe;optuna-random;optuna-tpe'
  --pruners "$pruners" --workers 1,16 --seeds 10 --budget-fe 30)
in_parallel peers mfh3_good,mfh6_good,mfh6_bad,branin_mf lc_hartmann6,counting_ones_8,counting_ones_32 \
  digits_net,lcbench_3945,lcbench_7593 lcbench_34539,lcbench_126025,lcbench_146212,lcbench_167104

simulate_args=($bench simulate --data "$data" --samplers 'random;tpe;tpe-complete-only;bohb'
  --pruners "$pruners" --workers 16 --seeds 10 --budget-fe 300)
in_parallel speedup "$synthetic" "$real"

for part in peers speedup; do
  cat "$out"/mf-$part-*.jsonl > "$out/mf-$part.jsonl"
  $bench report "$out/mf-$part.jsonl" --svg "$out/svg-mf-$part" > "$out/report-mf-$part.md"
done
echo "reports in $out/report-mf-*.md, plots in $out/svg-mf-*/"
