#!/bin/sh
# Scheduling overhead of `ferrotune run`: N trials (1000 by default) of a program that only
# prints its report line, and of one that sleeps 0.1 s first, JOBS (2) at a time, on a SQLite
# study with the default sampler (TPE). Prints one line per case: trials per second and the
# share of the slots' wall time a trial process was running (the goal is >= 95% for 100 ms
# trials). The numbers come from the runner's own `--json` summary.
#
#   cargo build --release -p ferrotune-cli && crates/ferrotune-cli/benches/run_overhead.sh
#   N=200 SAMPLER=random crates/ferrotune-cli/benches/run_overhead.sh
set -eu
N=${N:-1000}
JOBS=${JOBS:-2}
SAMPLER=${SAMPLER:-tpe}
BIN=${FERROTUNE:-$(cd "$(dirname "$0")/../../.." && pwd)/target/release/ferrotune}
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p ferrotune-cli ($BIN)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[params.x]\ntype = "float"\nlow = 0.0\nhigh = 1.0\n' > "$dir/space.toml"

bench() {
    name=$1
    shift
    "$BIN" run --study "$name" --storage "sqlite:///$dir/bench.db" --space "$dir/space.toml" \
        --direction minimize --metric loss --sampler "$SAMPLER" --pruner none --trials "$N" \
        --jobs "$JOBS" --workdir "$dir/runs-$name" --json -- "$@" | tail -n 1 |
        python3 -c 'import json, sys
s = json.load(sys.stdin)
r = s["run"]
print("%-10s %5d trials in %6.2f s: %7.1f trials/s, slots busy %5.1f%%"
      % (sys.argv[1], r["finished"], r["wall_s"], r["trials_per_s"], 100 * r["busy"]))' "$name"
}

echo "ferrotune run overhead: $N trials, --jobs $JOBS, --sampler $SAMPLER, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
bench echo sh -c 'echo "ferrotune: loss=0"'
bench sleep-0.1 sh -c 'sleep 0.1; echo "ferrotune: loss=0"'
