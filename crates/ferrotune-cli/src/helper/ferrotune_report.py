"""Report metrics to `ferrotune run` and read the trial's parameters (standard library only).

    from ferrotune_report import params, report
    p = params()                       # {"lr": 0.01, "momentum": None, ...}
    report(step=epoch, val_loss=loss)  # an intermediate value: the pruner may stop the run here
    report(val_loss=final)             # the final value
"""
import json
import os
import sys

__all__ = ["params", "report"]


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
        words.append("step=%d" % int(step))
    for name, value in metrics.items():
        if not name or any(c.isspace() or c == "=" for c in name):
            raise ValueError("metric name %r cannot be written as name=value" % (name,))
        words.append("%s=%r" % (name, float(value)))
    sys.stdout.write("ferrotune: " + " ".join(words) + "\n")
    sys.stdout.flush()
