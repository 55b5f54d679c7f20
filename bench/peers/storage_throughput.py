"""Peer baseline: persistent-storage throughput of Optuna and Rustuna.

Purpose
-------
ferrotune benchmarks how many trials per second its persistent storages
(SQLite, journal file, PostgreSQL) sustain. This script measures the same loop
for the peers from PyPI so the numbers can be compared:

* ``optuna``  -- RDBStorage (``sqlite:///FILE`` / a PostgreSQL URL) and
  ``JournalStorage(JournalFileBackend(FILE))``.
* ``rustuna`` -- ``rustuna.storages.SQLite3Storage(FILE)`` and
  ``rustuna.storages.JournalFileStorage(FILE)``. Rustuna has no PostgreSQL
  storage and no pruners; its ``Trial`` has no ``report()``.

Throughput mode (default)
-------------------------
Each trial is: ``ask`` -> suggest 10 floats ``x0..x9`` in [-5, 5] -> report 10
intermediate values (step ``i`` = partial sum of squares up to ``x_i``) ->
``tell(sum of squares)``. Sampler: ``RandomSampler(seed + worker_rank)``;
Optuna uses ``NopPruner`` and never calls ``should_prune``.

Rustuna cannot ``report()``. For it, two lines are printed by default
(``--rustuna-report both``): ``reports_per_trial: 0`` (public API only, marked
``"unsupported": "Trial.report ..."``) and ``reports_per_trial: 10`` where the
10 intermediate values are written through the storage protocol
(``trial.storage.set_trial_intermediate_value``), so the storage write load
matches Optuna's (``"report_via"`` says so).

With ``--processes P`` > 1 the study is created beforehand, then P OS processes
(``multiprocessing`` "spawn") open the storage, load the study, wait on a
barrier, and each runs ``N/P`` trials. Wall time runs from the barrier release
to the last worker's completion message; ``trials_per_s`` is the aggregate.
With P = 1 the loop runs in this process (storage opened and study created
before timing starts). Each process first runs ``--warmup`` (default 5)
untimed trials in a side study of the same storage, so lazy imports,
connection setup and statement caches stay out of the timing. Every run uses a fresh temp dir (SQLite/journal) or a
uniquely named study (PostgreSQL, deleted afterwards); the number of COMPLETE
trials is verified afterwards (``"completed"``).

TPE-at-history mode (``--tpe-history H``)
-----------------------------------------
Instead of the throughput loop: seed a study with H finished trials (same 10
float distributions, uniform random params, value = sum of squares) via
``study.add_trials`` (Rustuna: ``add_trial`` in a loop -- it has no
``add_trials``), then time ``--tpe-asks`` (default 20) rounds of
``ask + suggest 10 floats + tell`` with ``TPESampler(seed=0)`` at default
settings. Reports ``ms_per_ask``: the per-ask history read + model cost on that
storage.

Output
------
One JSON line per measurement::

    {"peer", "version", "storage", "processes", "trials", "wall_s",
     "trials_per_s", "reports_per_trial", "mode", "ms_per_ask", ...}

Unsupported combinations print a line with ``"unsupported": reason`` instead
of failing; worker errors print ``"error"``.

Running
-------
    python3 -m venv target/peers-venv
    target/peers-venv/bin/pip install -r bench/peers/requirements.txt psycopg2-binary==2.9.13
    P=target/peers-venv/bin/python
    S=bench/peers/storage_throughput.py
    $P $S --storage sqlite,journal --peer all --processes 1,8
    $P $S --storage sqlite --peer all --tpe-history 1000
    FERROTUNE_TEST_POSTGRES_URL=postgresql://u:p@host/db $P $S --storage postgres

``--storage``, ``--peer`` and ``--processes`` accept comma lists (or ``all``).
``--trials`` defaults to 300 for sqlite/postgres (Optuna is slow there) and
1000 for journal.
"""

import argparse
import importlib.metadata
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import uuid

N_PARAMS = 10
NAMES = [f"x{i}" for i in range(N_PARAMS)]
LOW, HIGH = -5.0, 5.0
ALL_STORAGES = ("sqlite", "journal", "postgres")
ALL_PEERS = ("optuna", "rustuna")
DEFAULT_TRIALS = {"sqlite": 300, "postgres": 300, "journal": 1000}
# SQLite busy timeout for Optuna's RDBStorage, so concurrent writers wait on
# the lock instead of failing with "database is locked" (pysqlite default: 5s).
SQLITE_BUSY_TIMEOUT_S = 60


def peer_version(peer):
    try:
        return importlib.metadata.version(peer)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# Storage construction. `location` is a file path (sqlite/journal) or a URL.
# --------------------------------------------------------------------------


def unsupported_reason(peer, storage_kind):
    if peer == "rustuna" and storage_kind == "postgres":
        return (
            "rustuna 0.2.0 has no PostgreSQL storage (only InMemoryStorage, "
            "SQLite3Storage, JournalFileStorage; an Optuna RDBStorage can be "
            "wrapped via rustuna.converter.ToRustunaStorage, which would "
            "measure Optuna's storage, not Rustuna's)"
        )
    return None


def open_storage(peer, storage_kind, location):
    if peer == "optuna":
        import optuna

        if storage_kind == "sqlite":
            return optuna.storages.RDBStorage(
                f"sqlite:///{location}",
                engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}},
            )
        if storage_kind == "postgres":
            return optuna.storages.RDBStorage(location)
        if storage_kind == "journal":
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(location))
    elif peer == "rustuna":
        import rustuna

        if storage_kind == "sqlite":
            return rustuna.storages.SQLite3Storage(location)
        if storage_kind == "journal":
            return rustuna.storages.JournalFileStorage(location)
    raise ValueError(f"unsupported: {peer}/{storage_kind}")


def make_sampler(peer, kind, seed):
    mod = __import__(peer)
    if kind == "random":
        return mod.samplers.RandomSampler(seed=seed)
    return mod.samplers.TPESampler(seed=seed)


def study_kwargs(peer, storage, study_name, sampler):
    """The arguments `create_study` and `load_study` share; Optuna's also get `NopPruner`
    (Rustuna has no pruners)."""
    kwargs = {"study_name": study_name, "storage": storage, "sampler": sampler}
    if peer == "optuna":
        import optuna

        kwargs["pruner"] = optuna.pruners.NopPruner()
    return kwargs


def create_study(peer, storage, study_name, sampler):
    return __import__(peer).create_study(
        direction="minimize", **study_kwargs(peer, storage, study_name, sampler)
    )


def load_study(peer, storage, study_name, sampler):
    return __import__(peer).load_study(**study_kwargs(peer, storage, study_name, sampler))


def count_complete(peer, storage, study_name):
    if peer == "optuna":
        import optuna

        study = optuna.load_study(study_name=study_name, storage=storage)
        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    import rustuna

    study = rustuna.load_study(study_name=study_name, storage=storage)
    return sum(1 for t in study.trials if t.state == rustuna.trial.TrialState.COMPLETE)


def quiet_optuna():
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass


# --------------------------------------------------------------------------
# The timed loops.
# --------------------------------------------------------------------------


def run_trials_optuna(study, n, n_reports):
    for _ in range(n):
        trial = study.ask()
        xs = [trial.suggest_float(name, LOW, HIGH) for name in NAMES]
        acc = 0.0
        for step, x in enumerate(xs):
            acc += x * x
            if step < n_reports:
                trial.report(acc, step)
        study.tell(trial, acc)


def run_trials_rustuna(study, n, n_reports):
    # Rustuna's Trial has no report(); with n_reports > 0 the intermediate
    # values go straight to the storage protocol, which is what Optuna's
    # report() does underneath (minus its pruner bookkeeping).
    storage = study._storage
    for _ in range(n):
        trial = study.ask()
        xs = [trial.suggest_float(name, LOW, HIGH) for name in NAMES]
        acc = 0.0
        tid = trial._trial_id
        for step, x in enumerate(xs):
            acc += x * x
            if step < n_reports:
                storage.set_trial_intermediate_value(tid, step, acc)
        study.tell(trial.number, acc)


def run_trials(peer, study, n, n_reports):
    if peer == "optuna":
        run_trials_optuna(study, n, n_reports)
    else:
        run_trials_rustuna(study, n, n_reports)


def warm_up(peer, storage, study_name, n_warmup, n_reports, seed):
    """Run a few untimed trials in a side study of the same storage, so lazy
    imports, connection setup and statement caches are not in the timing."""
    if n_warmup <= 0:
        return
    name = f"{study_name}-warmup-{uuid.uuid4().hex[:8]}"
    study = create_study(peer, storage, name, make_sampler(peer, "random", seed))
    run_trials(peer, study, n_warmup, n_reports)


def worker_main(peer, storage_kind, location, study_name, n, seed, n_reports, n_warmup,
                barrier, queue):
    """Entry point of one spawned worker process."""
    quiet_optuna()
    try:
        storage = open_storage(peer, storage_kind, location)
        warm_up(peer, storage, study_name, n_warmup, n_reports, seed)
        study = load_study(peer, storage, study_name, make_sampler(peer, "random", seed))
    except Exception as e:  # report setup failures instead of hanging the barrier
        barrier.abort()
        queue.put(("error", f"setup: {type(e).__name__}: {e}"))
        return
    try:
        barrier.wait()
    except Exception:
        return
    try:
        run_trials(peer, study, n, n_reports)
        queue.put(("ok", time.perf_counter()))
    except Exception as e:
        queue.put(("error", f"{type(e).__name__}: {e}"))


# --------------------------------------------------------------------------
# Measurements.
# --------------------------------------------------------------------------


class Location:
    """A fresh place to put one study: temp file or unique PostgreSQL study."""

    def __init__(self, storage_kind, postgres_url):
        self.kind = storage_kind
        self.tmpdir = None
        if storage_kind == "postgres":
            self.location = postgres_url
        else:
            self.tmpdir = tempfile.mkdtemp(prefix="ferrotune-peer-storage-")
            fname = "study.db" if storage_kind == "sqlite" else "journal.log"
            self.location = os.path.join(self.tmpdir, fname)
        self.study_name = f"ferrotune-bench-{uuid.uuid4().hex[:12]}"

    def cleanup(self, peer):
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        elif self.kind == "postgres" and peer == "optuna":
            try:
                import optuna

                optuna.delete_study(
                    study_name=self.study_name,
                    storage=open_storage(peer, self.kind, self.location),
                )
            except Exception:
                pass


def base_record(peer, storage_kind, processes, trials, mode, reports):
    return {
        "peer": peer,
        "version": peer_version(peer),
        "storage": storage_kind,
        "processes": processes,
        "trials": trials,
        "wall_s": None,
        "trials_per_s": None,
        "reports_per_trial": reports,
        "mode": mode,
        "ms_per_ask": None,
    }


def measure_throughput(peer, storage_kind, n_trials, processes, seed, n_reports, postgres_url,
                       n_warmup):
    rec = base_record(peer, storage_kind, processes, n_trials, "throughput", n_reports)
    rec["warmup_trials_per_process"] = n_warmup
    if peer == "rustuna":
        if n_reports:
            rec["report_via"] = "storage.set_trial_intermediate_value (rustuna Trial has no report())"
        else:
            rec["unsupported"] = "Trial.report (rustuna 0.2.0 has no report()/pruners); loop runs without reports"
    loc = Location(storage_kind, postgres_url)
    try:
        storage = open_storage(peer, storage_kind, loc.location)
        if processes == 1:
            study = create_study(peer, storage, loc.study_name, make_sampler(peer, "random", seed))
            warm_up(peer, storage, loc.study_name, n_warmup, n_reports, seed + 10_000)
            t0 = time.perf_counter()
            run_trials(peer, study, n_trials, n_reports)
            wall = time.perf_counter() - t0
        else:
            create_study(peer, storage, loc.study_name, make_sampler(peer, "random", seed))
            ctx = mp.get_context("spawn")
            barrier = ctx.Barrier(processes + 1)
            queue = ctx.Queue()
            shares = [n_trials // processes + (1 if r < n_trials % processes else 0) for r in range(processes)]
            procs = [
                ctx.Process(
                    target=worker_main,
                    args=(peer, storage_kind, loc.location, loc.study_name, shares[r],
                          seed + r, n_reports, n_warmup, barrier, queue),
                )
                for r in range(processes)
            ]
            for p in procs:
                p.start()
            try:
                barrier.wait(timeout=300)
            except Exception:
                pass
            t0 = time.perf_counter()
            errors, t_end = [], t0
            for _ in procs:
                status, payload = queue.get(timeout=3600)
                if status == "ok":
                    t_end = max(t_end, payload)
                else:
                    errors.append(payload)
                    if payload.startswith("setup:"):
                        break
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.terminate()
            if errors:
                rec["error"] = errors[0] if len(errors) == 1 else f"{len(errors)} workers failed; first: {errors[0]}"
                return rec
            wall = t_end - t0
        rec["wall_s"] = round(wall, 4)
        rec["trials_per_s"] = round(n_trials / wall, 2)
        rec["completed"] = count_complete(peer, open_storage(peer, storage_kind, loc.location), loc.study_name)
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        loc.cleanup(peer)
    return rec


def seed_history(peer, study, n_history, seed):
    rng = random.Random(seed)
    if peer == "optuna":
        import optuna

        dists = {name: optuna.distributions.FloatDistribution(LOW, HIGH) for name in NAMES}
        trials = []
        for _ in range(n_history):
            params = {name: rng.uniform(LOW, HIGH) for name in NAMES}
            trials.append(
                optuna.trial.create_trial(
                    params=params, distributions=dists, value=sum(v * v for v in params.values())
                )
            )
        study.add_trials(trials)
        return "add_trials"
    import rustuna

    dists = {name: rustuna.distributions.FloatDistribution(LOW, HIGH) for name in NAMES}
    for _ in range(n_history):
        params = {name: rng.uniform(LOW, HIGH) for name in NAMES}
        study.add_trial(
            rustuna.create_trial(params=params, distributions=dists, value=sum(v * v for v in params.values()))
        )
    return "add_trial loop (rustuna has no add_trials)"


def measure_tpe_history(peer, storage_kind, n_history, n_asks, seed, postgres_url):
    rec = base_record(peer, storage_kind, 1, n_asks, "tpe_ask_at_history", 0)
    rec["history"] = n_history
    loc = Location(storage_kind, postgres_url)
    try:
        storage = open_storage(peer, storage_kind, loc.location)
        study = create_study(peer, storage, loc.study_name, make_sampler(peer, "tpe", 0))
        s0 = time.perf_counter()
        rec["seeded_via"] = seed_history(peer, study, n_history, seed)
        rec["seed_wall_s"] = round(time.perf_counter() - s0, 3)
        t0 = time.perf_counter()
        run_trials(peer, study, n_asks, 0)
        wall = time.perf_counter() - t0
        rec["wall_s"] = round(wall, 4)
        rec["trials_per_s"] = round(n_asks / wall, 2)
        rec["ms_per_ask"] = round(wall / n_asks * 1000, 3)
        rec["completed"] = count_complete(peer, storage, loc.study_name)
    except Exception as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        loc.cleanup(peer)
    return rec


# --------------------------------------------------------------------------


def parse_list(value, allowed, name):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return list(allowed)
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"--{name}: unknown {bad}; choose from {list(allowed)} or 'all'")
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", default="all", help="sqlite|journal|postgres|all (comma list ok)")
    ap.add_argument("--peer", default="all", help="optuna|rustuna|all (comma list ok)")
    ap.add_argument("--trials", type=int, default=None,
                    help="trials per measurement (default: 300 sqlite/postgres, 1000 journal)")
    ap.add_argument("--processes", default="1", help="process counts, e.g. 1 or 8 or 1,8")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--postgres-url", default=None,
                    help="default: $FERROTUNE_TEST_POSTGRES_URL; postgres is skipped when unset")
    ap.add_argument("--warmup", type=int, default=5,
                    help="untimed warm-up trials per process, in a side study of the same storage")
    ap.add_argument("--tpe-history", type=int, default=0,
                    help="if > 0: TPE-ask-at-history mode with this many seeded trials")
    ap.add_argument("--tpe-asks", type=int, default=20)
    ap.add_argument("--rustuna-report", choices=("none", "storage", "both"), default="both",
                    help="rustuna has no report(): measure without reports, via storage writes, or both")
    args = ap.parse_args()

    storages = parse_list(args.storage, ALL_STORAGES, "storage")
    peers = parse_list(args.peer, ALL_PEERS, "peer")
    processes = [int(p) for p in args.processes.split(",") if p.strip()]
    postgres_url = args.postgres_url or os.environ.get("FERROTUNE_TEST_POSTGRES_URL")
    if postgres_url and postgres_url.startswith("postgres://"):
        # SQLAlchemy (Optuna's RDBStorage) only knows the `postgresql` dialect name.
        postgres_url = "postgresql+psycopg2://" + postgres_url[len("postgres://"):]
    quiet_optuna()

    def emit(rec):
        print(json.dumps(rec), flush=True)

    for storage_kind in storages:
        if storage_kind == "postgres" and not postgres_url:
            print("# postgres skipped: no --postgres-url and FERROTUNE_TEST_POSTGRES_URL unset",
                  file=sys.stderr, flush=True)
            continue
        for peer in peers:
            if peer_version(peer) is None:
                rec = base_record(peer, storage_kind, None, None, "throughput", None)
                rec["unsupported"] = f"{peer} is not installed"
                emit(rec)
                continue
            reason = unsupported_reason(peer, storage_kind)
            if args.tpe_history > 0:
                if reason:
                    rec = base_record(peer, storage_kind, 1, args.tpe_asks, "tpe_ask_at_history", 0)
                    rec["unsupported"] = reason
                    emit(rec)
                    continue
                emit(measure_tpe_history(peer, storage_kind, args.tpe_history, args.tpe_asks,
                                         args.seed, postgres_url))
                continue
            n_trials = args.trials or DEFAULT_TRIALS[storage_kind]
            if peer == "rustuna":
                report_modes = {"none": [0], "storage": [N_PARAMS], "both": [0, N_PARAMS]}[args.rustuna_report]
            else:
                report_modes = [N_PARAMS]
            for p in processes:
                for n_reports in report_modes:
                    if reason:
                        rec = base_record(peer, storage_kind, p, n_trials, "throughput", n_reports)
                        rec["unsupported"] = reason
                        emit(rec)
                        continue
                    emit(measure_throughput(peer, storage_kind, n_trials, p, args.seed,
                                            n_reports, postgres_url, args.warmup))


if __name__ == "__main__":
    main()
