"""Peer driver: runs Optuna's and Rustuna's samplers for ferrotune-bench.

The Rust harness (crates/ferrotune-bench/src/peer.rs) starts this script as a child and
owns the benchmark problems: it evaluates every point itself, so ferrotune and its peers
see identical functions. The two talk JSON Lines: one request per line on this process's
stdin, exactly one reply per request on its stdout (stderr is free for logs and warnings).

Requests and their replies (every reply carries ``"ok": true``):

    {"op":"hello"}                      -> {"protocol":2,"python":"3.11.7","versions":{...}}
    {"op":"run","sampler":"optuna-tpe","seed":3,"direction":"minimize"}
                                        -> {}            (a fresh in-memory study)
    {"op":"ask"}                        -> {"number":0}  (starts the study's next trial)
    {"op":"suggest","name":"x0","distribution":{"type":"float","low":-5.0,"high":10.0,
        "log":false}}                   -> {"value":1.25}
    {"op":"tell","value":0.4}           -> {"ms":0.37}   (value null: the trial failed)
    {"op":"ask_time","sampler":"optuna-tpe","n":1000,"dim":10,"repeats":20,"seed":0}
                                        -> {"ms":[...],"history":"add_trial"}

A simulated multi-fidelity study (ferrotune-bench's ``simulate``) keeps several trials alive
at once and addresses each by its number:

    {"op":"create","sampler":"optuna-tpe","pruner":"optuna-median","seed":3,
        "direction":"minimize"}         -> {}            (a fresh in-memory study)
    {"op":"ask"}                        -> {"number":4}  (one more live trial)
    {"op":"suggest","trial":4,"name":"x0","distribution":{...}}  -> {"value":1.25}
    {"op":"report","trial":4,"step":2,"value":0.7,"should_prune":true}
                                        -> {"prune":false}  (trial.report, then
                                           trial.should_prune unless should_prune is false)
    {"op":"tell","trial":4,"value":0.4} -> {"state":"complete"}
    {"op":"tell","trial":4,"state":"pruned"}   (or "fail") -> {"state":"pruned"}

The study of ``create`` is named ``ferrotune-sim`` so that pruners hashing the study name
(Optuna's HyperbandPruner assigns brackets that way) are as seeded as the sampler.

``distribution`` is ferrotune's JSON form: ``float`` (low, high, log, optional step),
``int`` (low, high, log, step) or ``categorical`` (choices, which keep their JSON types). A
suggestion goes to the peer's own ``suggest_float`` / ``suggest_int`` /
``suggest_categorical`` with the same arguments, so ints stay ints and a choice comes back
as the very value it was given as.

``ms`` of ``tell`` is the time spent inside the peer's own calls for that trial (ask, every
suggest_*, tell), measured with ``time.perf_counter`` around exactly those calls, so the
pipe and JSON are not counted. ``ask_time`` builds a study holding ``n`` finished trials at
uniformly random points of the sphere sum(x_i^2) on [-5, 5]^dim (``add_trials`` for Optuna,
``add_trial`` for Rustuna), then times ``repeats`` rounds of ask + suggest_float of every
x_i; the tell after each round is not timed.

A request that fails gets ``{"ok": false, "error": "...", "traceback": "..."}`` (the
traceback is also printed on stderr) and the driver carries on; end of input ends it.

Samplers (``"sampler"``): optuna-tpe (Optuna 5.0 defaults: multivariate for one objective,
constant_liar), optuna-tpe-univariate, optuna-random, rustuna-tpe (its defaults: multivariate
for one objective), rustuna-tpe-univariate, rustuna-random, and python-random (Python's
``random`` module, no packages needed: it exists to test the protocol).

Pruners (``"pruner"`` of ``create``), with Optuna 5.0's defaults: optuna-nop, optuna-median,
optuna-successive_halving, optuna-hyperband, optuna-wilcoxon; python-nop and python-median
(a plain median rule without packages, for python-random: prune a trial whose value at a step
is above the median of at least two other trials' values at that step).
"""

import importlib.metadata
import json
import math
import os
import platform
import random
import sys
import time
import traceback
import warnings

PROTOCOL = 2

SIM_STUDY_NAME = "ferrotune-sim"


class StudyPeer:
    """What the Optuna and Rustuna peers share: a ``study`` whose trials take Optuna-style
    suggestions."""

    def ask(self):
        return self.study.ask()

    def suggest(self, trial, name, d):
        return suggest(trial, name, d)


class OptunaPeer(StudyPeer):
    """A study of Optuna 5.0 with the given sampler."""

    def __init__(self, make_sampler, seed, direction, make_pruner=None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.optuna = optuna
        if make_pruner is None:
            self.study = optuna.create_study(
                direction=direction, sampler=make_sampler(optuna, seed)
            )
        else:
            self.study = optuna.create_study(
                direction=direction,
                sampler=make_sampler(optuna, seed),
                pruner=make_pruner(optuna),
                study_name=SIM_STUDY_NAME,
            )

    def report(self, trial, step, value, should_prune):
        trial.report(value, step)
        return bool(should_prune and trial.should_prune())

    def tell_state(self, trial, value, state):
        states = self.optuna.trial.TrialState
        if state == "pruned":
            frozen = self.study.tell(trial, state=states.PRUNED)
        elif state == "fail" or value is None:
            frozen = self.study.tell(trial, state=states.FAIL)
        else:
            frozen = self.study.tell(trial, value)
        return frozen.state.name.lower()

    def tell(self, trial, value):
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def add_complete(self, points, values, low, high):
        dist = self.optuna.distributions.FloatDistribution(low, high)
        self.study.add_trials(
            self.optuna.trial.create_trial(
                params=p, distributions={k: dist for k in p}, value=v
            )
            for p, v in zip(points, values)
        )
        return "add_trial"


class RustunaPeer(StudyPeer):
    """A study of Rustuna 0.2 with the given sampler (it has add_trial, not add_trials)."""

    def __init__(self, make_sampler, seed, direction):
        import rustuna

        self.rustuna = rustuna
        self.study = rustuna.create_study(direction=direction, sampler=make_sampler(rustuna, seed))

    def tell(self, trial, value):
        if value is None:
            self.study.tell(trial.number, None, state=self.rustuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial.number, value)

    def add_complete(self, points, values, low, high):
        dist = self.rustuna.distributions.FloatDistribution(low, high)
        for p, v in zip(points, values):
            self.study.add_trial(
                self.rustuna.create_trial(params=p, distributions={k: dist for k in p}, value=v)
            )
        return "add_trial"


class PythonRandomPeer:
    """Random search with Python's ``random`` module: a peer without packages, for tests."""

    class Trial:
        def __init__(self, number):
            self.number = number

    def __init__(self, _make_sampler, seed, _direction, make_pruner=None):
        self.rng = random.Random(seed)
        self.n = 0
        self.median = make_pruner is not None and make_pruner(None) == "median"
        # step -> {trial number: value}
        self.at_step = {}

    def report(self, trial, step, value, should_prune):
        others = [v for n, v in self.at_step.get(step, {}).items() if n != trial.number]
        self.at_step.setdefault(step, {})[trial.number] = value
        if not (should_prune and self.median) or len(others) < 2:
            return False
        others.sort()
        k = len(others)
        median = others[k // 2] if k % 2 else (others[k // 2 - 1] + others[k // 2]) / 2
        return value > median

    def tell_state(self, _trial, value, state):
        if state in ("pruned", "fail"):
            return state
        return "fail" if value is None else "complete"

    def ask(self):
        self.n += 1
        return self.Trial(self.n - 1)

    def suggest(self, _trial, _name, d):
        r = self.rng
        if d["type"] == "categorical":
            return r.choice(d["choices"])
        low, high, step = d["low"], d["high"], d.get("step")
        if d["type"] == "int":
            if d.get("log"):
                x = math.exp(r.uniform(math.log(low - 0.5), math.log(high + 0.5)))
                return min(max(round(x), low), high)
            return low + step * r.randint(0, (high - low) // step)
        if d.get("log"):
            return math.exp(r.uniform(math.log(low), math.log(high)))
        if step is not None:
            return min(low + step * r.randint(0, round((high - low) / step)), high)
        return r.uniform(low, high)

    def tell(self, _trial, _value):
        pass

    def add_complete(self, points, _values, _low, _high):
        self.n += len(points)
        return "add_trial"


def suggest(trial, name, d):
    """Asks an Optuna-style trial for the parameter described by ferrotune's JSON form."""
    kind = d["type"]
    low, high, log = d.get("low"), d.get("high"), d.get("log", False)
    if kind == "float":
        return trial.suggest_float(name, low, high, step=d.get("step"), log=log)
    if kind == "int":
        return trial.suggest_int(name, low, high, step=d.get("step", 1), log=log)
    if kind == "categorical":
        return trial.suggest_categorical(name, d["choices"])
    raise ValueError(f"unknown distribution type {kind!r}")


# Label -> (study class, sampler factory taking the package and the seed).
SAMPLERS = {
    "optuna-tpe": (OptunaPeer, lambda o, s: o.samplers.TPESampler(seed=s)),
    "optuna-tpe-univariate": (
        OptunaPeer,
        lambda o, s: o.samplers.TPESampler(seed=s, multivariate=False),
    ),
    "optuna-random": (OptunaPeer, lambda o, s: o.samplers.RandomSampler(seed=s)),
    "rustuna-tpe": (RustunaPeer, lambda r, s: r.samplers.TPESampler(seed=s)),
    "rustuna-tpe-univariate": (
        RustunaPeer,
        lambda r, s: r.samplers.TPESampler(seed=s, multivariate=False),
    ),
    "rustuna-random": (RustunaPeer, lambda r, s: r.samplers.RandomSampler(seed=s)),
    "python-random": (PythonRandomPeer, None),
}


# Label -> (the study class it works with, pruner factory taking the package).
PRUNERS = {
    "optuna-nop": (OptunaPeer, lambda o: o.pruners.NopPruner()),
    "optuna-median": (OptunaPeer, lambda o: o.pruners.MedianPruner()),
    "optuna-successive_halving": (OptunaPeer, lambda o: o.pruners.SuccessiveHalvingPruner()),
    "optuna-hyperband": (OptunaPeer, lambda o: o.pruners.HyperbandPruner()),
    "optuna-wilcoxon": (OptunaPeer, lambda o: o.pruners.WilcoxonPruner()),
    "python-nop": (PythonRandomPeer, lambda _: "nop"),
    "python-median": (PythonRandomPeer, lambda _: "median"),
}


def new_peer(label, seed, direction="minimize", pruner=None):
    if label not in SAMPLERS:
        known = ", ".join(SAMPLERS)
        raise ValueError(f"unknown peer sampler {label!r}; the known ones are {known}")
    cls, make_sampler = SAMPLERS[label]
    # NumPy's legacy seeding (Optuna's samplers) takes seeds below 2**32; the harness draws
    # 64-bit seeds with --random-seeds, so they are reduced modulo 2**32 here.
    seed %= 2**32
    if pruner is None:
        return cls(make_sampler, seed, direction)
    if pruner not in PRUNERS:
        known = ", ".join(PRUNERS)
        raise ValueError(f"unknown peer pruner {pruner!r}; the known ones are {known}")
    pruner_cls, make_pruner = PRUNERS[pruner]
    if pruner_cls is not cls:
        raise ValueError(f"the peer pruner {pruner!r} does not go with the sampler {label!r}")
    return cls(make_sampler, seed, direction, make_pruner)


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class Driver:
    """The state between requests: the current run's study and its open trial, or the
    simulated study of ``create`` and its live trials by number."""

    def __init__(self):
        self.peer = None
        self.trial = None
        self.ms = 0.0
        self.live = None

    def hello(self, _msg):
        versions = {p: version(p) for p in ("optuna", "rustuna", "numpy")}
        return {"protocol": PROTOCOL, "python": platform.python_version(), "versions": versions}

    def run(self, msg):
        self.peer, self.trial, self.live = None, None, None
        self.peer = new_peer(msg["sampler"], msg["seed"], msg.get("direction", "minimize"))
        return {}

    def create(self, msg):
        self.peer, self.trial, self.live = None, None, None
        self.peer = new_peer(
            msg["sampler"], msg["seed"], msg.get("direction", "minimize"), msg["pruner"]
        )
        self.live = {}
        return {}

    def live_trial(self, msg):
        if self.live is None:
            raise RuntimeError(f"{msg['op']} of a numbered trial without a simulated study")
        number = msg["trial"]
        if number not in self.live:
            raise RuntimeError(f"trial {number} is not live")
        return self.live[number]

    def report(self, msg):
        trial = self.live_trial(msg)
        prune = self.peer.report(trial, msg["step"], msg["value"], msg.get("should_prune", True))
        return {"prune": prune}

    def ask(self, _msg):
        if self.peer is None:
            raise RuntimeError("ask before run: start a run first")
        if self.live is not None:
            trial = self.peer.ask()
            self.live[trial.number] = trial
            return {"number": trial.number}
        if self.trial is not None:
            raise RuntimeError("ask while a trial is open: tell it first")
        start = time.perf_counter()
        self.trial = self.peer.ask()
        self.ms = (time.perf_counter() - start) * 1e3
        return {"number": self.trial.number}

    def suggest(self, msg):
        if "trial" in msg:
            trial = self.live_trial(msg)
            return {"value": self.peer.suggest(trial, msg["name"], msg["distribution"])}
        if self.trial is None:
            raise RuntimeError("suggest without an open trial: ask first")
        start = time.perf_counter()
        value = self.peer.suggest(self.trial, msg["name"], msg["distribution"])
        self.ms += (time.perf_counter() - start) * 1e3
        return {"value": value}

    def tell(self, msg):
        if "trial" in msg:
            trial = self.live_trial(msg)
            del self.live[msg["trial"]]
            return {"state": self.peer.tell_state(trial, msg.get("value"), msg.get("state"))}
        if self.trial is None:
            raise RuntimeError("tell without an open trial: ask first")
        trial, self.trial = self.trial, None
        start = time.perf_counter()
        self.peer.tell(trial, msg.get("value"))
        self.ms += (time.perf_counter() - start) * 1e3
        return {"ms": self.ms}

    def ask_time(self, msg):
        n, dim, repeats, seed = msg["n"], msg["dim"], msg["repeats"], msg.get("seed", 0)
        peer = new_peer(msg["sampler"], seed)
        rng = random.Random(seed)
        names = [f"x{i}" for i in range(dim)]
        points = [{k: rng.uniform(-5.0, 5.0) for k in names} for _ in range(n)]
        values = [sum(x * x for x in p.values()) for p in points]
        history = peer.add_complete(points, values, -5.0, 5.0)
        dist = {"type": "float", "low": -5.0, "high": 5.0, "log": False}
        ms = []
        for _ in range(repeats):
            start = time.perf_counter()
            trial = peer.ask()
            x = [peer.suggest(trial, k, dist) for k in names]
            ms.append((time.perf_counter() - start) * 1e3)
            peer.tell(trial, sum(v * v for v in x))
        return {"ms": ms, "history": history}


def main():
    # The protocol owns the original stdout; anything else that writes to file descriptor 1
    # (a stray print, a library's native code) lands on stderr instead.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    driver = Driver()
    ops = {
        "hello": driver.hello,
        "run": driver.run,
        "create": driver.create,
        "report": driver.report,
        "ask": driver.ask,
        "suggest": driver.suggest,
        "tell": driver.tell,
        "ask_time": driver.ask_time,
    }
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            op = msg.get("op")
            if op not in ops:
                raise ValueError(f"unknown op {op!r}; the ops are {', '.join(ops)}")
            reply = {"ok": True, **ops[op](msg)}
            text = json.dumps(reply, allow_nan=False)
        except Exception as e:  # every failure goes back to the harness as a message
            trace = traceback.format_exc()
            print(trace, file=sys.stderr, flush=True)
            error = f"{type(e).__name__}: {e}"
            text = json.dumps({"ok": False, "error": error, "traceback": trace})
        protocol.write(text + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
