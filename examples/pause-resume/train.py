"""A training loop that pauses and resumes, standard library only: linear regression by
mini-batch SGD with momentum on synthetic data, one epoch per step. Its whole state (weights,
velocity, the epoch and the shuffling generator) is saved through the helper before each
report, so a scheduler can pause the trial at a report and resume it later, on any worker,
exactly where it stopped.

    ferrotune run --study s --space space.toml --direction minimize --metric val_loss \
        --scheduler asha --max-resource 27 --trials 20 -- python3 train.py

Without a scheduler it trains 27 epochs and is an ordinary trial.
"""
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the example
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferrotune_report import (  # noqa: E402  (written by `ferrotune helper python --write`)
    load_checkpoint, max_step, params, report, save_checkpoint)

p = params()
lr, momentum = p["lr"], p["momentum"]
epochs = max_step() or 27
features = 8

# The data: y = w·x + noise, the same in every run.
data = random.Random(42)
true_w = [data.uniform(-2, 2) for _ in range(features)]


def sample():
    x = [data.gauss(0, 1) for _ in range(features)]
    return x, sum(a * b for a, b in zip(true_w, x)) + data.gauss(0, 0.5)


train = [sample() for _ in range(128)]
valid = [sample() for _ in range(64)]


def predict(w, x):
    return sum(a * b for a, b in zip(w, x))


# A resumed trial loads the state saved at FERROTUNE_RESUME_STEP; a fresh one starts at zero.
state = load_checkpoint() or {
    "epoch": 0,
    "w": [0.0] * features,
    "v": [0.0] * features,
    "rng": random.Random(0).getstate(),
}
rng = random.Random()
rng.setstate(state["rng"])
w, v = state["w"], state["v"]
for epoch in range(state["epoch"] + 1, epochs + 1):  # steps count from 1
    rng.shuffle(train)
    for start in range(0, len(train), 16):
        batch = train[start:start + 16]
        grad = [0.0] * features
        for x, y in batch:
            err = predict(w, x) - y
            grad = [g + 2 * err * xi / len(batch) for g, xi in zip(grad, x)]
        v = [momentum * vi + g for vi, g in zip(v, grad)]
        w = [wi - lr * vi for wi, vi in zip(w, v)]
    mse = sum((predict(w, x) - y) ** 2 for x, y in valid) / len(valid)
    if not math.isfinite(mse) or mse > 1e6:  # diverged
        w, v, mse = [0.0] * features, [0.0] * features, 1e6
    # First save, then report: the runner copies the saved state if the scheduler needs it.
    save_checkpoint({"epoch": epoch, "w": w, "v": v, "rng": rng.getstate()})
    report(step=epoch, val_loss=mse)
