"""Peer baseline: Optuna ask/tell bookkeeping overhead.

Purpose
-------
ferrotune benchmarks its own per-trial overhead (sampler + storage
bookkeeping, no real objective work). This script measures the same thing for
Optuna so we have a peer number to compare against: a study with
``RandomSampler(seed)`` and the default ``InMemoryStorage`` is driven through
the ask-and-tell interface, each trial suggests ``--params`` floats
``x0..x{P-1}`` in [-5, 5], and the objective is the (trivial) sum of squares.

Besides whole-loop wall time (``time.perf_counter``) and CPU time
(``time.process_time``), it reports the mean microseconds per trial over the
first 10% and the last 10% of trials, which shows whether per-trial cost grows
with study size.

Running
-------
    python3 -m venv target/peers-venv
    target/peers-venv/bin/pip install -r bench/peers/requirements.txt
    target/peers-venv/bin/python bench/peers/optuna_overhead.py \
        --trials 1000,10000 --params 10 --seed 0

``--trials`` accepts a comma list and may be repeated. One JSON line is printed
per trial count.
"""

import argparse
import json
import time

import optuna


def parse_trials(values):
    out = []
    for v in values:
        out.extend(int(x) for x in v.split(",") if x.strip())
    return out


def run_once(n_trials, n_params, seed):
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)  # InMemoryStorage by default
    names = [f"x{i}" for i in range(n_params)]

    window = max(1, n_trials // 10)
    last_start = n_trials - window

    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    t_first_end = t_last_start = None
    for i in range(n_trials):
        if i == last_start:
            t_last_start = time.perf_counter()
        trial = study.ask()
        value = 0.0
        for name in names:
            x = trial.suggest_float(name, -5.0, 5.0)
            value += x * x
        study.tell(trial, value)
        if i == window - 1:
            t_first_end = time.perf_counter()
    wall1 = time.perf_counter()
    cpu1 = time.process_time()

    wall = wall1 - wall0
    assert len(study.trials) == n_trials
    return {
        "peer": "optuna",
        "version": optuna.__version__,
        "sampler": "random",
        "storage": "inmemory",
        "trials": n_trials,
        "params": n_params,
        "wall_s": round(wall, 6),
        "cpu_s": round(cpu1 - cpu0, 6),
        "trials_per_s": round(n_trials / wall, 2),
        "us_per_trial_first": round((t_first_end - wall0) / window * 1e6, 2),
        "us_per_trial_last": round((wall1 - t_last_start) / window * 1e6, 2),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", action="append",
                    help="trial counts, comma list and/or repeated (default 1000,10000)")
    ap.add_argument("--params", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for n in parse_trials(args.trials or ["1000,10000"]):
        print(json.dumps(run_once(n, args.params, args.seed)), flush=True)


if __name__ == "__main__":
    main()
