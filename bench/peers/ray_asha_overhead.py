"""Ray Tune's ASHA overhead, the peer of `cargo bench -p ferrotune --bench scheduler_overhead`.

The same instant "training" loop: one float x in [0, 1], 27 steps, the value at step t is
x + 1/t, reported every step; ASHAScheduler with max_t = 27, grace period 1, reduction
factor 3 (Ray's ASHA stops trials, it does not pause them); random search; one CPU per
trial on a local Ray instance. Prints one JSON line per size in the Rust bench's format.

Run (Ray is not in bench/peers/requirements.txt: it is large):
    python3 -m venv target/ray-venv && target/ray-venv/bin/pip install "ray[tune]==2.40.0"
    target/ray-venv/bin/python bench/peers/ray_asha_overhead.py 300
"""

import json
import sys
import time

import ray
from ray import train, tune
from ray.tune.schedulers import ASHAScheduler

MAX_STEP = 27


def trainable(config):
    x = config["x"]
    for step in range(1, MAX_STEP + 1):
        train.report({"value": x + 1.0 / step, "step": step})


def run(n):
    scheduler = ASHAScheduler(
        time_attr="step", max_t=MAX_STEP, grace_period=1, reduction_factor=3
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            metric="value", mode="min", scheduler=scheduler, num_samples=n
        ),
        run_config=train.RunConfig(verbose=0, storage_path="/tmp/ray-results"),
    )
    start = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - start
    steps = sum(len(r.metrics_dataframe) for r in results if r.metrics_dataframe is not None)
    print(
        json.dumps(
            {
                "bench": "ray_tune_asha",
                "configurations": n,
                "steps": steps,
                "seconds": round(seconds, 3),
                "ms_per_configuration": round(1e3 * seconds / n, 3),
                "us_per_step": round(1e6 * seconds / max(steps, 1), 1),
            }
        ),
        flush=True,
    )


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [300]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for n in sizes:
        run(n)
    ray.shutdown()


if __name__ == "__main__":
    main()
