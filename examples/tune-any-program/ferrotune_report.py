"""Report metrics to `ferrotune run` and read the trial's parameters (standard library only).

    from ferrotune_report import params, report
    p = params()                       # {"lr": 0.01, "momentum": None, ...}
    report(step=epoch, val_loss=loss)  # an intermediate value: the pruner may stop the run here
    report(val_loss=final)             # the final value

With a scheduler (`ferrotune run --scheduler asha|sha|hyperband|bohb|pbt|pb2`) trials pause
and resume from checkpoints. Save the state first, then report the step: the runner copies
the saved state when the scheduler needs a checkpoint, and may stop the program right after
the report line (report() returns once the runner has handled the line, so the state saved
for a step is the one copied).

    from ferrotune_report import load_checkpoint, max_step, report, save_checkpoint
    state = load_checkpoint() or {"step": 0, "model": new_model()}  # None when starting fresh
    for step in range(state["step"] + 1, max_step() + 1):          # steps count from 1
        train_one_epoch(state["model"])
        state["step"] = step
        save_checkpoint(state)                                      # first save...
        report(step=step, val_loss=evaluate(state["model"]))       # ...then report
"""
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "checkpoint_dir",
    "load_checkpoint",
    "max_step",
    "params",
    "report",
    "resume_dir",
    "resume_step",
    "save_checkpoint",
]

STATE_FILE = "state.pkl"
# How long report() waits for the runner to handle a step line before going on anyway.
ACK_TIMEOUT_S = 600.0


def params():
    """The trial's parameters (None when inactive), from $FERROTUNE_PARAMS; {} outside a trial."""
    path = os.environ.get("FERROTUNE_PARAMS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def report(step=None, **metrics):
    """Print `ferrotune: step=3 val_loss=0.42` (with a step) or `ferrotune: val_loss=0.4`."""
    if not metrics:
        raise ValueError("report() needs a metric, e.g. report(val_loss=0.4)")
    words = []
    if step is not None:
        if int(step) != step or step < 0:
            raise ValueError("step must be a non-negative integer, got %r" % (step,))
        if step < 1 and checkpoint_dir() is not None:
            raise ValueError("with a scheduler steps count from 1 (the first step trained is 1)")
        words.append("step=%d" % int(step))
    for name, value in metrics.items():
        if not name or any(c.isspace() or c == "=" for c in name):
            raise ValueError("metric name %r cannot be written as name=value" % (name,))
        words.append("%s=%r" % (name, float(value)))
    sys.stdout.write("ferrotune: " + " ".join(words) + "\n")
    sys.stdout.flush()
    if step is not None:
        _wait_for_runner(int(step))


def _wait_for_runner(step):
    """With a scheduler, wait until the runner has handled the report of `step` (it writes the
    step into $FERROTUNE_ACK_FILE), so the saved state cannot change before it is copied."""
    path = os.environ.get("FERROTUNE_ACK_FILE")
    if not path:
        return
    deadline = time.monotonic() + ACK_TIMEOUT_S
    nap = 0.0005
    while time.monotonic() < deadline:
        try:
            with open(path, encoding="utf-8") as f:
                if int(f.read().strip() or -1) >= step:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(nap)
        nap = min(nap * 2, 0.02)


def _path(variable):
    value = os.environ.get(variable)
    return Path(value) if value else None


def _int(variable):
    value = os.environ.get(variable)
    return int(value) if value else None


def checkpoint_dir():
    """Where to save the state before each report ($FERROTUNE_CHECKPOINT_DIR, a Path; empty at
    each start), or None without a scheduler."""
    return _path("FERROTUNE_CHECKPOINT_DIR")


def resume_dir():
    """The checkpoint to resume from ($FERROTUNE_RESUME_DIR, a Path; read it, never change it),
    or None when the trial starts fresh."""
    return _path("FERROTUNE_RESUME_DIR")


def resume_step():
    """The step the checkpoint was saved at (an int; go on at resume_step() + 1), or None."""
    return _int("FERROTUNE_RESUME_STEP")


def max_step():
    """The step at which the scheduler completes a trial ($FERROTUNE_MAX_STEP), or None."""
    return _int("FERROTUNE_MAX_STEP")


def save_checkpoint(obj):
    """Pickle `obj` to checkpoint_dir()/state.pkl (atomically: a temporary file, then a rename).
    Call it before report(step=...). Returns the file's Path, or None without a scheduler."""
    directory = checkpoint_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        target = directory / STATE_FILE
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def load_checkpoint(default=None):
    """The object save_checkpoint() saved at resume_step(), or `default` when the trial starts
    fresh (or its checkpoint holds no state.pkl)."""
    directory = resume_dir()
    if directory is None:
        return default
    path = directory / STATE_FILE
    if not path.is_file():
        return default
    with open(path, "rb") as f:
        return pickle.load(f)
