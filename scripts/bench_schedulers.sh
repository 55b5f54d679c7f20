#!/usr/bin/env bash
# The pause-and-resume comparison behind bench/RESULTS.md ("Schedulers on simulated
# workers"): random search, synchronous successive halving, synchronous Hyperband, ASHA as a
# pruner (stopping) and with promotion, BOHB, and PBT / PB2, all through ferrotune's real
# Study with real checkpoint files, on W simulated workers (crates/ferrotune-bench/src/
# schedsim.rs): every step takes its modelled cost on a simulated clock, so 64 workers cost
# no more real time than one and every run repeats bit for bit.
#
#   scripts/bench_schedulers.sh [DATA_DIR]    (default: $FERROTUNE_BENCH_DATA or ../shared/data)
#
# Three parts, 10 seeds each:
#   main   the successive-halving family and random search, 1/4/16/64 workers, 24
#          full-fidelity equivalents, on lc_hartmann6, mfh6_good, counting_ones_8,
#          digits_net and (with the data folder) LCBench tasks 3945 and 7593.
#   pop    PBT and PB2 on the problems with training state (pbt_quadratic, digits_pbt),
#          run until their population of 8 completes, and random search with 16 whole runs
#          (the report compares each population run with the best of the first ⌈its
#          consumed budget⌉ random runs: the same compute).
#   large  BOHB, Hyperband and random search at 96 full-fidelity equivalents, 1 and 16
#          workers, on the synthetic problems.
#   overlap  the same at 16 workers with Hyperband and BOHB also run with up to 4 brackets
#          at once (max_concurrent_brackets = 4): half a minute.
# Resumable (each part appends to target/bench/sched-*.jsonl and skips runs already there);
# two processes at a time (JOBS=1 for one). About 10 minutes on 2 idle cores. Checkpoints go
# to a temporary directory ($TMPDIR, /dev/shm when it exists) and are removed after each run.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${FERROTUNE_BENCH_DATA:-../shared/data}}
out=target/bench
mkdir -p "$out"
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi

features=()
lcbench=
if [[ -d $data/yahpo/lcbench ]]; then
  features=(--features lcbench)
  lcbench=lcbench_3945,lcbench_7593
else
  echo "no LCBench data under $data/yahpo/lcbench: the LCBench tasks are left out" >&2
fi
cargo build --release -q -p ferrotune-bench "${features[@]}"
bench=target/release/ferrotune-bench

family=random,sync_sha,hyperband,asha_stopping,asha_promotion,bohb
main() { # problems, file suffix
  $bench schedule --data "$data" --problems "$1" --schedules $family --workers 1,4,16,64 \
    --seeds 10 --budget-fe 24 --out "$out/sched-main-$2.jsonl" > /dev/null
}
pop() {
  $bench schedule --problems pbt_quadratic,digits_pbt --schedules pbt,pb2,random \
    --workers 1,4,16,64 --seeds 10 --budget-fe 16 --out "$out/sched-pop.jsonl" > /dev/null
}
large() {
  $bench schedule --problems lc_hartmann6,mfh6_good,counting_ones_8 \
    --schedules random,hyperband,bohb --workers 1,16 --seeds 10 --budget-fe 96 \
    --out "$out/sched-large.jsonl" > /dev/null
}
w64() {
  $bench schedule --problems lc_hartmann6,mfh6_good,counting_ones_8 \
    --schedules random,sync_sha,asha_stopping,asha_promotion --workers 16,64 --seeds 10 \
    --budget-fe 96 --out "$out/sched-w64.jsonl" > /dev/null
}
overlap() {
  $bench schedule --problems lc_hartmann6,mfh6_good,counting_ones_8 \
    --schedules random,hyperband,bohb,hyperband_overlap,bohb_overlap --workers 16 --seeds 10 \
    --budget-fe 96 --out "$out/sched-overlap.jsonl" > /dev/null
}

start=$SECONDS
if (( ${JOBS:-2} > 1 )); then
  { main digits_net digits; pop; } &
  first=$!
  { main "lc_hartmann6,mfh6_good,counting_ones_8${lcbench:+,$lcbench}" synthetic; large; overlap; w64; } &
  second=$!
  wait $first
  wait $second
else
  main digits_net digits; pop
  main "lc_hartmann6,mfh6_good,counting_ones_8${lcbench:+,$lcbench}" synthetic; large; overlap; w64
fi
echo "simulated runs took $((SECONDS - start)) s" >&2

report=bench/results/schedulers.md
{
  $bench schedule-report "$out"/sched-main-*.jsonl "$out/sched-pop.jsonl" \
    --title "Schedulers on simulated workers (24 full-fidelity equivalents; PBT/PB2 to completion)" \
    --svg "$out/svg-sched"
  $bench schedule-report "$out/sched-large.jsonl" \
    --title "BOHB, Hyperband and random search at 96 full-fidelity equivalents" \
    --svg "$out/svg-sched-large"
} > "$report"
$bench schedule-report "$out/sched-overlap.jsonl" \
  --title "Overlapping brackets (max_concurrent_brackets = 4) at 96 full-fidelity equivalents, 16 workers" \
  --svg "$out/svg-sched-overlap" > bench/results/schedulers_overlap.md
$bench schedule-report "$out/sched-w64.jsonl" \
  --title "ASHA, synchronous SHA and random search at 96 FE with 16 and 64 workers" \
  > bench/results/schedulers_w64.md
for plot in lc_hartmann6_16 mfh6_good_16 counting_ones_8_16 digits_net_16 pbt_quadratic_4 \
  digits_pbt_4; do
  cp "$out/svg-sched/$plot.svg" "bench/plots/sched_$plot.svg"
done
cp "$out/svg-sched-large/counting_ones_8_16.svg" bench/plots/sched_large_counting_ones_8_16.svg
cp "$out/svg-sched-overlap/mfh6_good_16.svg" bench/plots/sched_overlap_mfh6_good_16.svg
echo "report in $report, plots in $out/svg-sched*/ (a few copied to bench/plots/sched_*)"
