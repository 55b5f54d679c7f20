//! Peers: Optuna's and Rustuna's samplers run on ferrotune-bench's own problems, through the
//! Python driver `bench/peers/optuna_driver.py`.
//!
//! The harness is the parent: it starts the driver once per harness call and talks JSON Lines
//! over the child's stdin and stdout (the child's stderr passes through to ours). Every
//! request gets exactly one reply, `{"ok": true, …}` or `{"ok": false, "error": "…"}`.
//!
//! ```text
//! → {"op":"hello"}                                        ← {"protocol":2,"versions":{…}}
//! → {"op":"run","sampler":"optuna-tpe","seed":3,"direction":"minimize"}   ← {}
//! → {"op":"ask"}                                          ← {"number":0}
//! → {"op":"suggest","name":"x0","distribution":{"type":"float","low":-5.0,"high":10.0,"log":false}}
//!                                                         ← {"value":1.25}
//! → {"op":"tell","value":0.4}                             ← {"ms":0.37}
//! → {"op":"ask_time","sampler":"rustuna-tpe","n":1000,"dim":10,"repeats":20,"seed":0}
//!                                                         ← {"ms":[…],"history":"add_trial"}
//! ```
//!
//! A simulated multi-fidelity study ([`crate::simulate`]) holds several live trials at once,
//! each addressed by its number ([`PeerSimStudy`]):
//!
//! ```text
//! → {"op":"create","sampler":"optuna-tpe","pruner":"optuna-median","seed":3,"direction":"minimize"}
//!                                                         ← {}
//! → {"op":"ask"}                                          ← {"number":4}
//! → {"op":"suggest","trial":4,"name":"x0","distribution":{…}}          ← {"value":1.25}
//! → {"op":"report","trial":4,"step":2,"value":0.7,"should_prune":true} ← {"prune":false}
//! → {"op":"tell","trial":4,"value":0.4}                   ← {"state":"complete"}
//! → {"op":"tell","trial":4,"state":"pruned"}              ← {"state":"pruned"}
//! ```
//!
//! A run keeps the problems in Rust: for each trial the harness asks the peer, then runs the
//! problem's own [`Problem::suggest`] against a throwaway in-memory ferrotune study whose
//! sampler is a proxy: each parameter the problem suggests is forwarded to the peer's trial
//! (with the distribution in ferrotune's JSON form, which the driver maps onto the peer's
//! `suggest_float` / `suggest_int` / `suggest_categorical`), and the peer's value is what the
//! problem gets. Conditional (define-by-run) problems thus work unchanged. The harness then
//! evaluates the point and tells the peer the value (`null` when it is not finite: the trial
//! failed); the reply is the milliseconds spent inside the peer's own calls for that trial
//! (ask, suggestions, tell), which becomes [`Record::overhead_ms`]. A parameter whose
//! distribution holds a single value is filled in by ferrotune without asking any sampler, so
//! the peer never sees it.
//!
//! A driver that exits mid-run ends its harness call with [`PeerError::Exited`] (the pipe
//! closes, so nothing hangs); a Python exception comes back as [`PeerError::Peer`], its
//! traceback printed on stderr.

use crate::fidelity::FidelityProblem;
use crate::harness::{bench_study, noise_seed, AskTimeRecord, HarnessError, Record, RunRecords};
use crate::problem::Problem;
use crate::simulate::{SimOutcome, SimStudy};
use ferrotune::rng::TrialRng;
use ferrotune::study::StudyView;
use ferrotune::{Distribution, FrozenTrial, ParamValue, Params, Sampler, Study, Trial, TrialState};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The protocol version this harness speaks; the driver's `hello` must answer the same.
pub const PROTOCOL: u64 = 2;

/// The driver script, relative to the repository root.
pub const DEFAULT_DRIVER: &str = "bench/peers/optuna_driver.py";

/// The peers' virtual environment's Python, relative to the repository root (created from
/// `bench/peers/requirements.txt`).
pub const DEFAULT_PYTHON: &str = "target/peers-venv/bin/python";

/// The repository this crate was built from, so the defaults are found from any directory.
const CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The command that creates the peers' virtual environment, for error messages.
const VENV_HINT: &str = "python3 -m venv target/peers-venv && \
     target/peers-venv/bin/pip install -r bench/peers/requirements.txt";

/// Which Python runs which driver script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The Python interpreter (it must be able to import the peers a run asks for).
    pub python: PathBuf,
    /// The driver script.
    pub driver: PathBuf,
}

impl Default for PeerConfig {
    /// The venv's Python when it exists, else `python3`; the driver script of this
    /// checkout. Relative defaults are looked up in the working directory first, then in the
    /// checkout the binary was built from.
    fn default() -> Self {
        let venv = locate(DEFAULT_PYTHON);
        PeerConfig {
            python: if venv.exists() {
                venv
            } else {
                PathBuf::from("python3")
            },
            driver: locate(DEFAULT_DRIVER),
        }
    }
}

impl PeerConfig {
    /// Whether the peers' virtual environment (as [`DEFAULT_PYTHON`]) exists.
    pub fn venv_exists() -> bool {
        locate(DEFAULT_PYTHON).exists()
    }
}

/// `relative` in the working directory when it is there, else in the checkout.
fn locate(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    let there = Path::new(CHECKOUT).join(relative);
    if there.exists() {
        there
    } else {
        here
    }
}

/// What can go wrong with a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The driver script is not where it was looked for.
    #[error("the peer driver `{0}` does not exist; run from the repository root or pass --driver")]
    MissingDriver(PathBuf),
    /// The Python interpreter could not be started.
    #[error(
        "cannot start the peer driver with `{python}`: {source}; create the peers' venv with \
         `{VENV_HINT}` or pass --python"
    )]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The driver exited (or closed its output) before answering.
    #[error(
        "the peer driver exited during `{op}` ({status}); its stderr above says why (is the \
         venv complete? `{VENV_HINT}`)"
    )]
    Exited {
        /// The request it did not answer.
        op: String,
        /// How it ended.
        status: String,
    },
    /// Reading from or writing to the driver failed.
    #[error("talking to the peer driver during `{op}`: {source}")]
    Io {
        /// The request.
        op: String,
        /// Why.
        source: std::io::Error,
    },
    /// The driver answered something that is not a reply of this protocol.
    #[error("the peer driver's answer to `{op}` is not a valid reply ({reason}): {line}")]
    Protocol {
        /// The request.
        op: String,
        /// What is wrong with the answer.
        reason: String,
        /// The answer.
        line: String,
    },
    /// The driver speaks another version of the protocol.
    #[error("the peer driver speaks protocol {found}, this harness {PROTOCOL}; use the driver of this checkout")]
    Version {
        /// The driver's version.
        found: u64,
    },
    /// The peer raised an exception (its traceback is on stderr).
    #[error("the peer failed during `{op}`: {message}")]
    Peer {
        /// The request.
        op: String,
        /// The exception, as `Type: message`.
        message: String,
    },
    /// The peer suggested a value outside the distribution it was asked for.
    #[error("the peer suggested {value} for `{name}`, outside {distribution}")]
    OutOfDistribution {
        /// The parameter.
        name: String,
        /// The value.
        value: String,
        /// The distribution.
        distribution: String,
    },
}

/// The pipes to a running driver process.
#[derive(Debug)]
struct Conn {
    child: Child,
    /// `None` once closed (on drop, so the driver sees end of input and exits).
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: String,
}

impl Conn {
    /// Sends one request and decodes its reply's fields into `R`.
    fn call<R: DeserializeOwned>(&mut self, op: &str, request: &Value) -> Result<R, PeerError> {
        let mut text = request.to_string();
        text.push('\n');
        let io = |source| PeerError::Io {
            op: op.to_owned(),
            source,
        };
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.exited(op));
        };
        if let Err(e) = stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
        {
            return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.exited(op)
            } else {
                io(e)
            });
        }
        self.line.clear();
        if self.stdout.read_line(&mut self.line).map_err(io)? == 0 {
            return Err(self.exited(op));
        }
        let bad = |reason: String, line: &str| PeerError::Protocol {
            op: op.to_owned(),
            reason,
            line: line.trim_end().to_owned(),
        };
        let reply: Value =
            serde_json::from_str(&self.line).map_err(|e| bad(e.to_string(), &self.line))?;
        match reply.get("ok").and_then(Value::as_bool) {
            Some(true) => serde_json::from_value(reply).map_err(|e| bad(e.to_string(), &self.line)),
            Some(false) => Err(PeerError::Peer {
                op: op.to_owned(),
                message: reply
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
            }),
            None => Err(bad("no boolean `ok`".into(), &self.line)),
        }
    }

    /// The error for a driver that stopped answering, with its exit status when it has one.
    fn exited(&mut self, op: &str) -> PeerError {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => break "it closed its output but is still running".to_owned(),
                Err(e) => break format!("its status is unknown: {e}"),
            }
        };
        PeerError::Exited {
            op: op.to_owned(),
            status,
        }
    }
}

impl Drop for Conn {
    /// Closes the driver's input (it exits at end of input), then waits for it briefly and
    /// kills it if it is still there.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the pipes (or the failure) as they were: still
    // usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Deserialize)]
struct Hello {
    protocol: u64,
    #[serde(default)]
    versions: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize)]
struct Empty {}

#[derive(Deserialize)]
struct Asked {
    number: u64,
}

#[derive(Deserialize)]
struct Suggested {
    value: ParamValue,
}

#[derive(Deserialize)]
struct Told {
    ms: f64,
}

#[derive(Deserialize)]
struct Reported {
    prune: bool,
}

#[derive(Deserialize)]
struct Finished {
    state: String,
}

#[derive(Deserialize)]
struct AskTimes {
    ms: Vec<f64>,
    history: String,
}

/// A running driver process: one per harness call, reused by every run.
#[derive(Debug)]
pub struct PeerDriver {
    conn: Arc<Mutex<Conn>>,
    versions: BTreeMap<String, Option<String>>,
}

impl PeerDriver {
    /// Starts the driver and checks that it speaks this harness's protocol.
    pub fn spawn(config: &PeerConfig) -> Result<PeerDriver, PeerError> {
        if !config.driver.is_file() {
            return Err(PeerError::MissingDriver(config.driver.clone()));
        }
        let mut child = Command::new(&config.python)
            .arg(&config.driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| PeerError::Spawn {
                python: config.python.clone(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(PeerError::Spawn {
                python: config.python.clone(),
                source: std::io::Error::other("no pipes to the child"),
            });
        };
        let mut conn = Conn {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            line: String::new(),
        };
        let hello: Hello = conn.call("hello", &json!({"op": "hello"}))?;
        if hello.protocol != PROTOCOL {
            return Err(PeerError::Version {
                found: hello.protocol,
            });
        }
        Ok(PeerDriver {
            conn: Arc::new(Mutex::new(conn)),
            versions: hello.versions,
        })
    }

    /// The versions of the peer packages the driver's Python has (`None`: not installed).
    pub fn versions(&self) -> &BTreeMap<String, Option<String>> {
        &self.versions
    }

    fn call<R: DeserializeOwned>(&self, op: &str, request: &Value) -> Result<R, PeerError> {
        lock(&self.conn).call(op, request)
    }

    /// A throwaway ferrotune study whose sampler forwards every suggestion to this driver's
    /// current peer study, so the problem's own `suggest` drives the peer.
    fn proxy_study(&self, seed: u64) -> Result<(Arc<Proxy>, Study), HarnessError> {
        let proxy = Arc::new(Proxy::new(self.conn.clone()));
        let study = bench_study(
            Study::builder().custom_sampler("peer-proxy", proxy.clone()),
            seed,
        )?;
        Ok((proxy, study))
    }

    /// Runs the peer sampler `label` on `problem` for `n_trials` with `seed` (minimizing);
    /// one record per trial, as [`crate::harness::run_one`] writes for ferrotune.
    pub fn run(
        &self,
        problem: &dyn Problem,
        label: &str,
        seed: u64,
        n_trials: u64,
    ) -> Result<Vec<Record>, HarnessError> {
        let _: Empty = self.call(
            "run",
            &json!({"op": "run", "sampler": label, "seed": seed, "direction": "minimize"}),
        )?;
        let (proxy, study) = self.proxy_study(seed)?;
        let mut records = RunRecords::new(problem, label, seed, n_trials);
        for _ in 0..n_trials {
            let asked: Asked = self.call("ask", &json!({"op": "ask"}))?;
            let mut trial = study.ask()?;
            if let Err(e) = problem.suggest(&mut trial) {
                return Err(match proxy.take_failure() {
                    Some(peer) => peer.into(),
                    None => e.into(),
                });
            }
            let params = &trial.frozen().params;
            let value = problem.evaluate(params, noise_seed(seed, trial.number()));
            let expected = problem.expected(params);
            let finite = value.is_finite();
            let told: Told = self.call(
                "tell",
                &json!({"op": "tell", "value": finite.then_some(value)}),
            )?;
            study.tell(trial, value)?;
            let state = if finite {
                TrialState::Complete
            } else {
                TrialState::Fail
            };
            records.push(
                asked.number,
                state,
                finite.then_some(value),
                expected,
                told.ms,
            );
        }
        Ok(records.into_records())
    }

    /// Times the peer sampler `label` asking for a trial of `dim` floats once its study holds
    /// `n` finished ones, `repeats` times (see [`AskTimeRecord`]).
    pub fn ask_time(
        &self,
        label: &str,
        n: u64,
        dim: usize,
        repeats: usize,
        seed: u64,
    ) -> Result<AskTimeRecord, PeerError> {
        let times: AskTimes = self.call(
            "ask_time",
            &json!({"op": "ask_time", "sampler": label, "n": n, "dim": dim,
                    "repeats": repeats, "seed": seed}),
        )?;
        Ok(AskTimeRecord::new(label, n, dim, times.ms, times.history))
    }

    /// Creates the driver's simulated study of the peer sampler `sampler` and the peer pruner
    /// `pruner` (`optuna-median`, …) with `seed`, minimizing; it replaces any earlier study
    /// of the driver.
    pub fn sim_study(
        &self,
        sampler: &str,
        pruner: &str,
        seed: u64,
    ) -> Result<PeerSimStudy<'_>, HarnessError> {
        let _: Empty = self.call(
            "create",
            &json!({"op": "create", "sampler": sampler, "pruner": pruner, "seed": seed,
                    "direction": "minimize"}),
        )?;
        let (proxy, study) = self.proxy_study(seed)?;
        Ok(PeerSimStudy {
            driver: self,
            proxy,
            study,
        })
    }
}

/// A peer's study for the simulated multi-fidelity runs of [`crate::simulate`]: the driver's
/// study of `create` (a peer sampler and a peer pruner), with several live trials at once.
/// Each live trial pairs the peer's trial number with a trial of a throwaway ferrotune study
/// whose proxy sampler forwards that trial's suggestions to the peer trial of the same
/// worker, so the problem suggests through its own [`FidelityProblem::suggest`].
#[derive(Debug)]
pub struct PeerSimStudy<'d> {
    driver: &'d PeerDriver,
    proxy: Arc<Proxy>,
    study: Study,
}

/// A live trial of a [`PeerSimStudy`].
pub struct PeerSimTrial<'s> {
    /// The peer's trial number.
    number: u64,
    /// The proxy study's trial holding the parameters.
    trial: Trial<'s>,
}

impl std::fmt::Debug for PeerSimTrial<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSimTrial")
            .field("number", &self.number)
            .field("params", &self.trial.frozen().params)
            .finish()
    }
}

impl PeerSimStudy<'_> {
    fn call<R: DeserializeOwned>(&self, op: &str, request: &Value) -> Result<R, PeerError> {
        self.driver.call(op, request)
    }
}

impl SimStudy for PeerSimStudy<'_> {
    type Trial<'s>
        = PeerSimTrial<'s>
    where
        Self: 's;

    fn ask<'s>(&'s self, problem: &dyn FidelityProblem) -> Result<PeerSimTrial<'s>, HarnessError> {
        let asked: Asked = self.call("ask", &json!({"op": "ask"}))?;
        let mut trial = self.study.ask()?;
        lock(&self.proxy.routes).insert(trial.number(), asked.number);
        if let Err(e) = problem.suggest(&mut trial) {
            return Err(match self.proxy.take_failure() {
                Some(peer) => peer.into(),
                None => e.into(),
            });
        }
        Ok(PeerSimTrial {
            number: asked.number,
            trial,
        })
    }

    fn number(trial: &PeerSimTrial<'_>) -> u64 {
        trial.number
    }

    fn params<'a>(trial: &'a PeerSimTrial<'_>) -> &'a Params {
        &trial.trial.frozen().params
    }

    fn report(
        &self,
        trial: &mut PeerSimTrial<'_>,
        step: u64,
        value: f64,
        should_prune: bool,
    ) -> Result<bool, HarnessError> {
        let reported: Reported = self.call(
            "report",
            &json!({"op": "report", "trial": trial.number, "step": step,
                    "value": value.is_finite().then_some(value), "should_prune": should_prune}),
        )?;
        Ok(reported.prune)
    }

    fn tell(
        &self,
        trial: PeerSimTrial<'_>,
        outcome: SimOutcome,
    ) -> Result<TrialState, HarnessError> {
        let request = match outcome {
            SimOutcome::Complete(value) => {
                json!({"op": "tell", "trial": trial.number, "value": value.is_finite().then_some(value)})
            }
            SimOutcome::Pruned => json!({"op": "tell", "trial": trial.number, "state": "pruned"}),
            SimOutcome::Failed(_) => json!({"op": "tell", "trial": trial.number, "state": "fail"}),
        };
        let finished: Finished = self.call("tell", &request)?;
        lock(&self.proxy.routes).remove(&trial.trial.number());
        self.study
            .tell_failed(trial.trial, "closed: the peer holds the trial")?;
        match finished.state.as_str() {
            "complete" => Ok(TrialState::Complete),
            "pruned" => Ok(TrialState::Pruned),
            "fail" => Ok(TrialState::Fail),
            other => Err(PeerError::Protocol {
                op: "tell".into(),
                reason: "the state is not complete, pruned or fail".into(),
                line: other.to_owned(),
            }
            .into()),
        }
    }
}

/// The driver of one harness call, started when the first peer run needs it.
#[derive(Debug)]
pub struct Peers {
    config: PeerConfig,
    driver: Option<PeerDriver>,
}

impl Peers {
    /// Nothing is started until [`Peers::driver`] is called.
    pub fn new(config: PeerConfig) -> Peers {
        Peers {
            config,
            driver: None,
        }
    }

    /// The running driver, started now if it is not yet.
    pub fn driver(&mut self) -> Result<&PeerDriver, PeerError> {
        let driver = match self.driver.take() {
            Some(driver) => driver,
            None => PeerDriver::spawn(&self.config)?,
        };
        Ok(self.driver.insert(driver))
    }
}

/// The sampler of the throwaway ferrotune study in a peer run: it samples nothing itself and
/// forwards every parameter to the peer's current trial, one suggestion at a time (no joint
/// proposal: the [`Sampler`] defaults give an empty relative search space).
#[derive(Debug)]
struct Proxy {
    conn: Arc<Mutex<Conn>>,
    /// The peer's error behind the last failed suggestion: ferrotune's error type cannot
    /// carry it, so the run picks it up here.
    failure: Mutex<Option<PeerError>>,
    /// This study's trial number → the peer's trial number, for the simulated studies whose
    /// peer holds several live trials; empty in a plain run (one trial at a time).
    routes: Mutex<HashMap<u64, u64>>,
}

impl Proxy {
    fn new(conn: Arc<Mutex<Conn>>) -> Proxy {
        Proxy {
            conn,
            failure: Mutex::new(None),
            routes: Mutex::new(HashMap::new()),
        }
    }

    fn take_failure(&self) -> Option<PeerError> {
        lock(&self.failure).take()
    }

    fn suggest(
        &self,
        trial: u64,
        name: &str,
        distribution: &Distribution,
    ) -> Result<f64, PeerError> {
        let mut request = json!({"op": "suggest", "name": name, "distribution": distribution});
        if let Some(&peer_trial) = lock(&self.routes).get(&trial) {
            request["trial"] = json!(peer_trial);
        }
        let suggested: Suggested = lock(&self.conn).call("suggest", &request)?;
        distribution
            .to_internal(&suggested.value)
            .map_err(|_| PeerError::OutOfDistribution {
                name: name.to_owned(),
                value: format!("{} ({})", suggested.value, suggested.value.type_name()),
                distribution: distribution.to_string(),
            })
    }
}

impl Sampler for Proxy {
    fn sample_independent(
        &self,
        _study: &StudyView<'_>,
        trial: &FrozenTrial,
        name: &str,
        distribution: &Distribution,
        _rng: &mut TrialRng,
    ) -> ferrotune::Result<f64> {
        self.suggest(trial.number, name, distribution).map_err(|e| {
            let message = format!("peer sampler: {e}");
            *lock(&self.failure) = Some(e);
            ferrotune::Error::Unsupported(message)
        })
    }
}

/// What the peer tests here and in [`crate::simulate`] share: when they run, and with which
/// Python.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Set by CI (after creating the venv): the peer tests must run, never skip.
    pub(crate) const GATE: &str = "FERROTUNE_BENCH_PEERS";

    /// Whether the gate is set.
    pub(crate) fn gated() -> bool {
        std::env::var(GATE).is_ok_and(|v| v == "1")
    }

    /// `python3` without any package: enough for the driver's `python-*` peers. `None`
    /// (skip) when it cannot be started, unless the gate is set.
    pub(crate) fn plain_python() -> Option<PeerConfig> {
        let ok = Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(!gated(), "{GATE}=1 but python3 cannot be started");
            eprintln!("skipped: python3 cannot be started");
            return None;
        }
        Some(PeerConfig {
            python: PathBuf::from("python3"),
            driver: locate(DEFAULT_DRIVER),
        })
    }

    /// Whether a test of the real peers (`what`) runs: skips (false) without the gate, and
    /// fails with the gate set but the peers' venv missing.
    pub(crate) fn real_peers(what: &str) -> bool {
        if !gated() {
            eprintln!("skipped: set {GATE}=1 (with the venv: {VENV_HINT}) to run {what}");
            return false;
        }
        assert!(
            PeerConfig::venv_exists(),
            "{GATE}=1 but the peers' venv {DEFAULT_PYTHON} is missing; create it with `{VENV_HINT}`"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{plain_python, real_peers};
    use super::*;
    use crate::harness::{ask_time, run_one, Contender};
    use crate::problem::{Conditional, Mixed};
    use ferrotune::{CategoricalDistribution, FloatDistribution, IntDistribution, Params, Trial};

    /// A problem with every kind of distribution; its value is 1 when every parameter has
    /// the type and range it was suggested with, and NaN otherwise.
    struct Typed;

    impl Problem for Typed {
        fn name(&self) -> String {
            "typed".into()
        }
        fn suggest(&self, trial: &mut Trial<'_>) -> ferrotune::Result<()> {
            trial.suggest_float_log("lr", 1e-5, 1e-1)?;
            trial.suggest("q", FloatDistribution::stepped(0.0, 1.0, 0.25)?)?;
            trial.suggest_int_log("units", 1, 1024)?;
            trial.suggest("even", IntDistribution::new(0, 10, false, 2)?)?;
            let choices = CategoricalDistribution::new([
                ParamValue::from("a"),
                ParamValue::Int(3),
                ParamValue::Float(0.5),
                ParamValue::Bool(true),
            ])?;
            if trial.suggest("choice", choices)? == ParamValue::Int(3) {
                trial.suggest_int("only_if_3", -3, 3)?;
            }
            Ok(())
        }
        fn evaluate(&self, params: &Params, _noise_seed: u64) -> f64 {
            let float = |k: &str| match params.get(k) {
                Some(ParamValue::Float(x)) => *x,
                _ => f64::NAN,
            };
            let int = |k: &str| params.get(k).and_then(ParamValue::as_i64);
            let good = (1e-5..=1e-1).contains(&float("lr"))
                && [0.0, 0.25, 0.5, 0.75, 1.0].contains(&float("q"))
                && int("units").is_some_and(|u| (1..=1024).contains(&u))
                && int("even").is_some_and(|e| e % 2 == 0 && (0..=10).contains(&e))
                && params.get("choice").is_some()
                && (params.get("choice") != Some(&ParamValue::Int(3))
                    || int("only_if_3").is_some_and(|v| (-3..=3).contains(&v)));
            if good {
                1.0
            } else {
                f64::NAN
            }
        }
        fn optimum(&self) -> Option<f64> {
            None
        }
    }

    fn check_run(records: &[Record], label: &str, problem: &dyn Problem, n: u64) {
        assert_eq!(records.len() as u64, n, "{label} on {}", problem.name());
        let optimum = problem.optimum().unwrap_or(f64::NEG_INFINITY);
        let mut best = f64::INFINITY;
        for (i, r) in records.iter().enumerate() {
            let context = format!("{label} on {}: {r:?}", problem.name());
            assert_eq!(
                (r.trial, r.sampler.as_str()),
                (i as u64, label),
                "{context}"
            );
            assert_eq!(r.state, TrialState::Complete, "{context}");
            let v = r.value.unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= optimum - 1e-9, "{context}");
            best = best.min(v);
            assert_eq!(r.best_so_far.map(f64::to_bits), Some(best.to_bits()));
            assert!(
                r.overhead_ms > 0.0 && r.overhead_ms.is_finite(),
                "{context}"
            );
        }
    }

    #[test]
    fn the_protocol_carries_every_distribution_and_conditional_spaces() {
        let Some(config) = plain_python() else { return };
        let mut peers = Peers::new(config);
        let peer = Contender::parse(crate::harness::PYTHON_RANDOM).unwrap();
        for problem in [&Typed as &dyn Problem, &Mixed, &Conditional] {
            let records = run_one(problem, &peer, 7, 40, &mut peers).unwrap();
            check_run(&records, "python-random", problem, 40);
            if problem.name() == "typed" {
                assert!(records.iter().all(|r| r.value == Some(1.0)), "{records:?}");
            }
            // Seeded: the same run again gives the same values.
            let again = run_one(problem, &peer, 7, 40, &mut peers).unwrap();
            let values = |rs: &[Record]| {
                rs.iter()
                    .map(|r| r.value.map(f64::to_bits))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&records), values(&again));
        }
        let times = ask_time(&peer, 30, 4, 3, 0, &mut peers).unwrap();
        assert_eq!((times.n_trials, times.dim, times.ms.len()), (30, 4, 3));
        assert_eq!(
            (times.kind.as_str(), times.history.as_str()),
            ("ask_time", "add_trial")
        );
    }

    #[test]
    fn peer_errors_are_clear() {
        let Some(config) = plain_python() else { return };
        let mut peers = Peers::new(config.clone());
        let unknown = Contender::parse("optuna-nonsense").unwrap();
        let err = run_one(&Mixed, &unknown, 0, 3, &mut peers)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("optuna-nonsense") && err.contains("optuna-tpe, optuna-tpe-univariate"),
            "{err}"
        );
        // The driver carries on after a failed request.
        let peer = Contender::parse(crate::harness::PYTHON_RANDOM).unwrap();
        assert_eq!(run_one(&Mixed, &peer, 0, 3, &mut peers).unwrap().len(), 3);

        let missing = PeerConfig {
            driver: PathBuf::from("no/such/driver.py"),
            ..config.clone()
        };
        let err = PeerDriver::spawn(&missing).unwrap_err();
        assert!(matches!(err, PeerError::MissingDriver(_)), "{err}");
        let no_python = PeerConfig {
            python: PathBuf::from("/no/such/python"),
            ..config.clone()
        };
        let err = PeerDriver::spawn(&no_python).unwrap_err().to_string();
        assert!(
            err.contains("/no/such/python") && err.contains("requirements.txt"),
            "{err}"
        );
    }

    /// A fake driver: answers `hello`, then `run`, then dies (or answers garbage).
    fn fake_driver(name: &str, after_run: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-peer-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("driver.py");
        let script = format!(
            "import sys\n\
             print('{{\"ok\": true, \"protocol\": 2}}', flush=True)\n\
             sys.stdin.readline()\n\
             print('{{\"ok\": true}}', flush=True)\n\
             sys.stdin.readline()\n\
             {after_run}\n"
        );
        std::fs::write(&path, script).unwrap();
        path
    }

    #[test]
    fn a_driver_that_dies_or_babbles_is_an_error_not_a_hang() {
        let Some(config) = plain_python() else { return };
        let peer = Contender::parse("optuna-tpe").unwrap();
        let dying = PeerConfig {
            driver: fake_driver("dies", "sys.exit(3)"),
            ..config.clone()
        };
        let err = run_one(&Mixed, &peer, 0, 5, &mut Peers::new(dying)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exited during `ask`") && text.contains('3'),
            "{text}"
        );
        let babbling = PeerConfig {
            driver: fake_driver("babbles", "print('hello there', flush=True)"),
            ..config
        };
        let err = run_one(&Mixed, &peer, 0, 5, &mut Peers::new(babbling))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a valid reply") && err.contains("hello there"),
            "{err}"
        );
    }

    /// The real peers, from the venv. Runs when `FERROTUNE_BENCH_PEERS=1` (CI sets it after
    /// creating the venv) and fails when the venv is missing then; skips otherwise.
    #[test]
    fn optuna_and_rustuna_run_the_conditional_and_mixed_problems() {
        if !real_peers("the peers") {
            return;
        }
        let driver = PeerDriver::spawn(&PeerConfig::default()).unwrap();
        let versions = driver.versions();
        assert_eq!(versions.get("optuna"), Some(&Some("5.0.0".to_owned())));
        assert_eq!(versions.get("rustuna"), Some(&Some("0.2.0".to_owned())));
        let mut peers = Peers::new(PeerConfig::default());
        let n = 40;
        for label in ["optuna-random", "optuna-tpe", "rustuna-tpe"] {
            let peer = Contender::parse(label).unwrap();
            for problem in [&Conditional as &dyn Problem, &Mixed, &Typed] {
                let records = run_one(problem, &peer, 1, n, &mut peers).unwrap();
                check_run(&records, label, problem, n);
                if problem.name() == "typed" {
                    assert!(
                        records.iter().all(|r| r.value == Some(1.0)),
                        "{label}: {records:?}"
                    );
                    continue;
                }
                // The search finds points well below the problem's typical value.
                let mut values: Vec<f64> = records.iter().filter_map(|r| r.value).collect();
                values.sort_by(f64::total_cmp);
                let (best, median) = (values[0], values[values.len() / 2]);
                assert!(
                    best < median / 2.0,
                    "{label} on {}: best {best}, median {median}",
                    problem.name()
                );
            }
            let times = ask_time(&peer, 50, 3, 2, 0, &mut peers).unwrap();
            assert_eq!((times.n_trials, times.ms.len()), (50, 2));
            assert!(times.ms.iter().all(|&ms| ms > 0.0), "{times:?}");
        }
    }
}
