#!/usr/bin/env bash
# The full sampler comparison behind bench/RESULTS.md: ferrotune's TPE (multivariate and
# univariate) and random search against Optuna 5.0.0's and Rustuna 0.2.0's TPE (PyPI,
# pinned in bench/peers/requirements.txt), every problem evaluated by the same Rust code.
#
#   scripts/bench_samplers_vs_peers.sh [DATA_DIR]     (default: $FERROTUNE_BENCH_DATA or ../shared/data)
#
# Resumable: every stage appends to target/bench/*.jsonl and skips runs already there, so
# an interrupted comparison continues where it stopped. Set BUDGET (e.g. 30m) to stop each
# stage after that long. On 2 cores the whole comparison takes about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${FERROTUNE_BENCH_DATA:-../shared/data}}
budget=(); [[ -n ${BUDGET:-} ]] && budget=(--budget "$BUDGET")
out=target/bench
mkdir -p "$out"

venv=target/peers-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r bench/peers/requirements.txt
cargo build --release -q -p ferrotune-bench
bench=target/release/ferrotune-bench

tpe='tpe,optuna-tpe,rustuna-tpe,tpe-univariate,optuna-tpe-univariate,random'
synthetic=branin,hartmann3,hartmann6,rosenbrock5,rosenbrock20,ackley10,levy10,styblinski_tang10,rastrigin10,hartmann6_noisy,mixed,conditional

# Quality: 10 seeds × 200 trials on the synthetic problems and the 15 tabular benchmarks.
$bench run --problems "$synthetic" --samplers "$tpe" --seeds 10 --trials 200 \
  --out "$out/synthetic.jsonl" "${budget[@]}"
$bench run --problems tabular --data "$data" --samplers "$tpe" --seeds 10 --trials 200 \
  --out "$out/tabular.jsonl" "${budget[@]}"
# The real ML task (cross-validated RF/SVM/KNN on digits) costs seconds per evaluation:
# fewer seeds and trials, evaluations cached by configuration across samplers and reruns.
$bench run --problems digits --samplers tpe,optuna-tpe,rustuna-tpe,random --seeds 3 \
  --trials 50 --cache "$out/digits-cache.jsonl" --out "$out/digits.jsonl" "${budget[@]}"

# Speed: ms per ask at 100/1000/5000 finished trials (10 floats), seeded with add_trial.
rm -f "$out/ask-time.jsonl"
$bench ask-time --samplers tpe,tpe-univariate,optuna-tpe,optuna-tpe-univariate,rustuna-tpe \
  --n 100,1000,5000 --dim 10 --repeats 10 --out "$out/ask-time.jsonl"

$bench report "$out/synthetic.jsonl" --ask-time "$out/ask-time.jsonl" --svg "$out/svg-synthetic" \
  > "$out/report-synthetic.md"
for part in tabular digits; do
  $bench report "$out/$part.jsonl" --data "$data" --svg "$out/svg-$part" > "$out/report-$part.md"
done
echo "reports in $out/report-*.md, plots in $out/svg-*/"
