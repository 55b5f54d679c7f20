//! The harness: runs samplers on problems for N trials × R seeds and appends one JSON Lines
//! record per trial, in a versioned format the multi-fidelity work will extend. Runs already
//! in the output file are skipped, so an interrupted comparison resumes where it stopped,
//! and a time budget stops it between runs.
//!
//! Each sampler of a comparison is a [`Contender`] with its own label: one of ferrotune's
//! samplers built from a spec, or a peer's (Optuna, Rustuna) run by the Python driver of
//! [`crate::peer`] on the very same problems. [`ask_time_all`] measures how long each takes
//! to ask for a trial once its study holds a given number of finished trials.

use crate::peer::{PeerConfig, PeerError, Peers};
use crate::problem::Problem;
use crate::report::PEER_PREFIXES;
use ferrotune::rng::TrialRng;
use ferrotune::{
    Distribution, FloatDistribution, FrozenTrial, ParamValue, PrunerSpec, SamplerSpec, Study,
    StudyBuilder, TrialState,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The record format's version; bump it when a field changes meaning. Version 3 added the
/// multi-fidelity fields of the simulated runs ([`crate::simulate`]): `step`, `fidelity`,
/// `consumed_budget`, `sim_start`, `sim_end`, `worker` and `best_any_fidelity`, all optional
/// (absent, or `null`, in the records of plain runs and of versions 1 and 2).
pub const RECORD_VERSION: u32 = 3;

/// One trial of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`RECORD_VERSION`] of the writer.
    pub version: u32,
    /// The problem's name.
    pub problem: String,
    /// The sampler's label ([`Contender::label`]).
    pub sampler: String,
    /// The run's seed.
    pub seed: u64,
    /// The trial number.
    pub trial: u64,
    /// The trial's final state.
    pub state: TrialState,
    /// Its objective value, when Complete.
    pub value: Option<f64>,
    /// The best value so far in the run (after this trial).
    pub best_so_far: Option<f64>,
    /// The noise-free value ([`Problem::expected`]) of the trial holding `best_so_far`, for
    /// noisy problems; the report measures regret on it. Absent in version-1 records.
    #[serde(default)]
    pub incumbent_expected: Option<f64>,
    /// Milliseconds spent in the sampler's library for this trial (ask, sampling, tell),
    /// objective excluded: ferrotune's as timed here, a peer's as timed by the driver around
    /// its own calls (the pipe to the driver excluded).
    pub overhead_ms: f64,
    /// The last step the trial ran (and reported), in a simulated multi-fidelity run.
    #[serde(default)]
    pub step: Option<u64>,
    /// That step as a fraction of the problem's maximum fidelity (1 for a trial run to the
    /// end).
    #[serde(default)]
    pub fidelity: Option<f64>,
    /// The budget consumed by the whole run when this trial ended, in full-fidelity
    /// equivalents (steps started so far / the problem's maximum steps).
    #[serde(default)]
    pub consumed_budget: Option<f64>,
    /// Simulated seconds at which the trial started.
    #[serde(default)]
    pub sim_start: Option<f64>,
    /// Simulated seconds at which the trial ended.
    #[serde(default)]
    pub sim_end: Option<f64>,
    /// The simulated worker that ran the trial.
    #[serde(default)]
    pub worker: Option<u32>,
    /// The best value the run observed at any fidelity so far (any step of any trial);
    /// `best_so_far` of a simulated run counts only values at the maximum fidelity.
    #[serde(default)]
    pub best_any_fidelity: Option<f64>,
}

impl Record {
    /// A record of a plain (not simulated) run: every multi-fidelity field empty.
    #[allow(clippy::too_many_arguments)]
    pub fn plain(
        problem: &str,
        sampler: &str,
        seed: u64,
        trial: u64,
        state: TrialState,
        value: Option<f64>,
        best_so_far: Option<f64>,
        incumbent_expected: Option<f64>,
        overhead_ms: f64,
    ) -> Record {
        Record {
            version: RECORD_VERSION,
            problem: problem.to_owned(),
            sampler: sampler.to_owned(),
            seed,
            trial,
            state,
            value,
            best_so_far,
            incumbent_expected,
            overhead_ms,
            step: None,
            fidelity: None,
            consumed_budget: None,
            sim_start: None,
            sim_end: None,
            worker: None,
            best_any_fidelity: None,
        }
    }

    /// Whether the record comes from a simulated multi-fidelity run ([`crate::simulate`]).
    pub fn is_simulated(&self) -> bool {
        self.sim_end.is_some()
    }
}

/// The time one sampler takes to ask for (and sample) a new trial once the study holds
/// `n_trials` finished trials. Written one per line to its own JSON Lines file, by the
/// Rust harness for ferrotune and by `bench/peers/optuna_driver.py` for the peers, so the
/// report compares them measured in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AskTimeRecord {
    /// [`RECORD_VERSION`] of the writer.
    pub version: u32,
    /// Always `"ask_time"`, so the record's kind is visible in the file.
    pub kind: String,
    /// The sampler's label (`tpe`, `tpe-univariate`, `optuna-tpe`, `rustuna-tpe`, …).
    pub sampler: String,
    /// Finished trials in the study when the asks were timed.
    pub n_trials: u64,
    /// Float parameters per trial (the problem is a `dim`-dimensional sphere).
    pub dim: usize,
    /// Milliseconds of each timed ask (ask + every suggestion of the trial).
    pub ms: Vec<f64>,
    /// How the history was built: `add_trial` (seeded directly) or `optimize` (asked and
    /// told up to `n_trials`, for peers without a way to add finished trials).
    pub history: String,
}

impl AskTimeRecord {
    /// The record of `sampler`'s timed asks `ms` at `n_trials` finished trials of `dim`
    /// floats, the history built as `history` says; of this writer's version and kind.
    pub fn new(
        sampler: &str,
        n_trials: u64,
        dim: usize,
        ms: Vec<f64>,
        history: impl Into<String>,
    ) -> AskTimeRecord {
        AskTimeRecord {
            version: RECORD_VERSION,
            kind: "ask_time".to_owned(),
            sampler: sampler.to_owned(),
            n_trials,
            dim,
            ms,
            history: history.into(),
        }
    }
}

/// The records of one run, trial by trial, with the best value so far: what ferrotune's runs
/// and the peers' ([`crate::peer`]) both write.
#[derive(Debug)]
pub(crate) struct RunRecords {
    problem: String,
    sampler: String,
    seed: u64,
    best: Option<f64>,
    incumbent_expected: Option<f64>,
    records: Vec<Record>,
}

impl RunRecords {
    /// No trial yet of `sampler` on `problem` with `seed`, room for `n_trials`.
    pub(crate) fn new(problem: &dyn Problem, sampler: &str, seed: u64, n_trials: u64) -> Self {
        RunRecords {
            problem: problem.name(),
            sampler: sampler.to_owned(),
            seed,
            best: None,
            incumbent_expected: None,
            records: Vec::with_capacity(usize::try_from(n_trials).unwrap_or(0)),
        }
    }

    /// Records trial number `trial`, finished in `state` with `value` (when Complete) after
    /// `overhead_ms` in the sampler's library; a Complete value can lower the best so far,
    /// and its noise-free value `expected` (if the problem is noisy) becomes the
    /// incumbent's.
    pub(crate) fn push(
        &mut self,
        trial: u64,
        state: TrialState,
        value: Option<f64>,
        expected: Option<f64>,
        overhead_ms: f64,
    ) {
        if let (TrialState::Complete, Some(v)) = (state, value) {
            if self.best.is_none_or(|b| v < b) {
                self.best = Some(v);
                self.incumbent_expected = expected;
            }
        }
        self.records.push(Record::plain(
            &self.problem,
            &self.sampler,
            self.seed,
            trial,
            state,
            value,
            self.best,
            self.incumbent_expected,
            overhead_ms,
        ));
    }

    /// The records, in trial order.
    pub(crate) fn into_records(self) -> Vec<Record> {
        self.records
    }
}

/// The study of a benchmark run or timing: `builder` (with its sampler) without pruner,
/// seeded with `seed`.
pub(crate) fn bench_study(builder: StudyBuilder, seed: u64) -> ferrotune::Result<Study> {
    builder.pruner(PrunerSpec::Nop).seed(seed).build()
}

/// The seed of a problem's noise for trial `number` of the run seeded with `seed`: the same
/// for every sampler, ferrotune's or a peer's, so they face the same noise.
pub(crate) fn noise_seed(seed: u64, number: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ number
}

/// ferrotune's samplers the command line knows by name: label and spec (JSON form). A JSON spec
/// equal to one of these gets its label, so `{"type":"tpe","multivariate":false}` and
/// `tpe-univariate` are one contender.
const NAMED: [(&str, &str); 7] = [
    ("random", r#"{"type":"random"}"#),
    ("qmc", r#"{"type":"qmc","kind":"sobol"}"#),
    ("halton", r#"{"type":"qmc","kind":"halton"}"#),
    ("tpe", r#"{"type":"tpe"}"#),
    ("tpe-univariate", r#"{"type":"tpe","multivariate":false}"#),
    ("bohb", r#"{"type":"bohb"}"#),
    // TPE modelling complete trials only (pruned ones left out), for comparisons.
    (
        "tpe-complete-only",
        r#"{"type":"tpe","consider_pruned_trials":false}"#,
    ),
];

/// The driver's own dependency-free peer (Python's `random`), for testing the protocol.
pub const PYTHON_RANDOM: &str = "python-random";

/// A sampler taking part in a comparison, under the label its records carry. Two contenders
/// of one comparison must have different labels: the label is what resuming and the report
/// group by.
#[derive(Clone, Debug, PartialEq)]
pub enum Contender {
    /// One of ferrotune's samplers, built from its spec.
    Ferrotune {
        /// The records' label (`tpe`, `tpe-univariate`, …).
        label: String,
        /// The sampler.
        spec: SamplerSpec,
    },
    /// A peer's sampler, run by the Python driver ([`crate::peer`]); the label is also the
    /// name the driver knows it by (`optuna-tpe`, `rustuna-tpe`, …).
    Peer {
        /// The records' label and the driver's sampler name.
        label: String,
    },
}

impl Contender {
    /// ferrotune's sampler `spec`, labelled as the command line would name it.
    pub fn ferrotune(spec: SamplerSpec) -> Contender {
        Contender::Ferrotune {
            label: label_of(&spec),
            spec,
        }
    }

    /// Parses a command-line sampler: `random`, `qmc` (or `sobol`), `halton`, `tpe`
    /// (ferrotune's defaults: multivariate), `tpe-univariate`, a JSON [`SamplerSpec`], or a
    /// peer: any label starting with `optuna-` or `rustuna-` (the driver checks that it knows
    /// it), or `python-random`.
    pub fn parse(text: &str) -> Result<Contender, HarnessError> {
        let text = text.trim();
        let unknown = |reason: String| HarnessError::UnknownSampler {
            name: text.to_owned(),
            reason,
        };
        if text.starts_with('{') {
            let spec: SamplerSpec = serde_json::from_str(text)
                .map_err(|e| unknown(format!("not a sampler spec: {e}")))?;
            return Ok(Contender::ferrotune(spec));
        }
        if PEER_PREFIXES.iter().any(|p| text.starts_with(p)) || text == PYTHON_RANDOM {
            return Ok(Contender::Peer {
                label: text.to_owned(),
            });
        }
        let canonical = if text == "sobol" { "qmc" } else { text };
        if let Some((label, json)) = NAMED.iter().find(|(label, _)| *label == canonical) {
            let spec = serde_json::from_str(json).map_err(|e| unknown(e.to_string()))?;
            return Ok(Contender::Ferrotune {
                label: (*label).to_owned(),
                spec,
            });
        }
        if text == "grid" {
            return Err(unknown(
                "a grid needs its values per parameter; pass a JSON spec such as \
                 {\"type\":\"grid\",\"grid\":{\"x0\":[0,1],\"x1\":[2,3]}}"
                    .into(),
            ));
        }
        Err(unknown(
            "the samplers are random, qmc (or sobol), halton, tpe, tpe-univariate, tpe-complete-only, bohb, a JSON spec \
             such as {\"type\":\"tpe\",\"n_startup_trials\":20}, and the peers optuna-tpe, \
             optuna-tpe-univariate, optuna-random, rustuna-tpe, rustuna-tpe-univariate, \
             rustuna-random"
                .into(),
        ))
    }

    /// The label its records carry.
    pub fn label(&self) -> &str {
        match self {
            Contender::Ferrotune { label, .. } | Contender::Peer { label } => label,
        }
    }
}

/// The label of a spec: the command-line name it equals, else the spec's own short name.
fn label_of(spec: &SamplerSpec) -> String {
    NAMED
        .iter()
        .find(|(_, json)| serde_json::from_str::<SamplerSpec>(json).ok().as_ref() == Some(spec))
        .map_or_else(|| spec.name().to_owned(), |(label, _)| (*label).to_owned())
}

/// Calls `f` with each line of the JSON Lines file at `path` that is a `T`, skipping the
/// others; nothing when the file does not exist.
pub(crate) fn for_each_line_of<T: DeserializeOwned>(
    path: &Path,
    mut f: impl FnMut(T),
) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        if let Ok(item) = serde_json::from_str(&line?) {
            f(item);
        }
    }
    Ok(())
}

/// `path` opened for appending, created when missing.
pub(crate) fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The runs (problem, sampler, seed) already complete in a results file.
pub fn completed_runs(
    path: &Path,
    n_trials: u64,
) -> std::io::Result<HashSet<(String, String, u64)>> {
    let mut trials_per_run = std::collections::HashMap::new();
    for_each_line_of(path, |r: Record| {
        *trials_per_run
            .entry((r.problem, r.sampler, r.seed))
            .or_insert(0u64) += 1;
    })?;
    Ok(trials_per_run
        .into_iter()
        .filter(|(_, n)| *n >= n_trials)
        .map(|(k, _)| k)
        .collect())
}

/// Runs `contender` on `problem` for `n_trials` with `seed`; returns one record per trial. A
/// peer runs through `peers`' driver, which starts on first use.
pub fn run_one(
    problem: &dyn Problem,
    contender: &Contender,
    seed: u64,
    n_trials: u64,
    peers: &mut Peers,
) -> Result<Vec<Record>, HarnessError> {
    match contender {
        Contender::Ferrotune { label, spec } => run_ferrotune(problem, label, spec, seed, n_trials),
        Contender::Peer { label } => peers.driver()?.run(problem, label, seed, n_trials),
    }
}

/// [`run_one`] for one of ferrotune's samplers.
fn run_ferrotune(
    problem: &dyn Problem,
    label: &str,
    spec: &SamplerSpec,
    seed: u64,
    n_trials: u64,
) -> Result<Vec<Record>, HarnessError> {
    let study = bench_study(Study::builder().sampler(spec.clone()), seed)?;
    let mut records = RunRecords::new(problem, label, seed, n_trials);
    for _ in 0..n_trials {
        let start = Instant::now();
        let mut trial = study.ask()?;
        problem.suggest(&mut trial)?;
        let sampled = start.elapsed();
        let params = &trial.frozen().params;
        let value = problem.evaluate(params, noise_seed(seed, trial.number()));
        let expected = problem.expected(params);
        let tell_start = Instant::now();
        let done = study.tell(trial, value)?;
        let overhead = sampled + tell_start.elapsed();
        records.push(
            done.number,
            done.state,
            done.value(),
            expected,
            overhead.as_secs_f64() * 1e3,
        );
    }
    Ok(records.into_records())
}

/// What [`run_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Runs executed now.
    pub ran: usize,
    /// Runs found complete in the file and skipped.
    pub skipped: usize,
    /// Runs left because the time budget ran out.
    pub left: usize,
}

/// Runs every (problem, contender, seed) not yet in `out`, appending each run's records when
/// it finishes (so a killed harness never leaves half a run), until `budget` is spent. Peers
/// share one driver process (started with `peers` when the first peer run needs it).
pub fn run_all(
    problems: &[Box<dyn Problem>],
    contenders: &[Contender],
    seeds: &[u64],
    n_trials: u64,
    out: &Path,
    budget: Option<Duration>,
    peers: &PeerConfig,
) -> Result<Progress, HarnessError> {
    check_labels(contenders)?;
    let done = completed_runs(out, n_trials)?;
    let start = Instant::now();
    let mut progress = Progress::default();
    let mut peers = Peers::new(peers.clone());
    let mut file = open_append(out)?;
    for problem in problems {
        for contender in contenders {
            for &seed in seeds {
                let key = (problem.name(), contender.label().to_owned(), seed);
                if done.contains(&key) {
                    progress.skipped += 1;
                    continue;
                }
                if budget.is_some_and(|b| start.elapsed() >= b) {
                    progress.left += 1;
                    continue;
                }
                let records = run_one(problem.as_ref(), contender, seed, n_trials, &mut peers)?;
                append_lines(&mut file, &records)?;
                progress.ran += 1;
            }
        }
    }
    Ok(progress)
}

/// Two contenders with one label would mix their records.
fn check_labels(contenders: &[Contender]) -> Result<(), HarnessError> {
    let mut seen = HashSet::new();
    for c in contenders {
        if !seen.insert(c.label()) {
            return Err(HarnessError::DuplicateLabel(c.label().to_owned()));
        }
    }
    Ok(())
}

/// Appends one JSON line per item, in one write.
pub(crate) fn append_lines<T: Serialize>(
    file: &mut std::fs::File,
    items: &[T],
) -> Result<(), HarnessError> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.flush()?;
    Ok(())
}

/// The uniform range of every coordinate of the ask-time sphere.
const SPHERE: (f64, f64) = (-5.0, 5.0);

/// Times ferrotune's sampler `spec` asking for a trial once its in-memory study holds `n`
/// finished trials: the study is seeded (`add_trials`) with `n` Complete trials at uniformly
/// random points of the sphere Σxᵢ² on [-5, 5]^`dim` (parameters `x0…`), then `repeats` asks
/// are timed, each with the `suggest_float` of every coordinate; the tell after each ask is
/// not timed.
pub fn ask_time_ferrotune(
    label: &str,
    spec: &SamplerSpec,
    n: u64,
    dim: usize,
    repeats: usize,
    seed: u64,
) -> Result<AskTimeRecord, HarnessError> {
    let (low, high) = SPHERE;
    let study = bench_study(Study::builder().sampler(spec.clone()), seed)?;
    let dist: Distribution = FloatDistribution::uniform(low, high)?.into();
    let names: Vec<String> = (0..dim).map(|i| format!("x{i}")).collect();
    let mut rng = TrialRng::from_seed(seed);
    let history: Vec<FrozenTrial> = (0..n)
        .map(|_| {
            let x: Vec<f64> = (0..dim)
                .map(|_| low + (high - low) * rng.uniform())
                .collect();
            let value = x.iter().map(|v| v * v).sum();
            let params = names
                .iter()
                .zip(&x)
                .map(|(name, &v)| (name.clone(), dist.clone(), ParamValue::Float(v)));
            FrozenTrial::completed(params, vec![value])
        })
        .collect();
    study.add_trials(&history)?;
    let mut ms = Vec::with_capacity(repeats);
    let mut x = Vec::with_capacity(dim);
    for _ in 0..repeats {
        x.clear();
        let start = Instant::now();
        let mut trial = study.ask()?;
        for name in &names {
            x.push(trial.suggest_float(name, low, high)?);
        }
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        study.tell(trial, x.iter().map(|v| v * v).sum::<f64>())?;
    }
    Ok(AskTimeRecord::new(label, n, dim, ms, "add_trial"))
}

/// [`ask_time_ferrotune`] for any contender: a peer is timed by the driver in the same way
/// (Optuna seeded with `add_trials`, Rustuna with `add_trial`).
pub fn ask_time(
    contender: &Contender,
    n: u64,
    dim: usize,
    repeats: usize,
    seed: u64,
    peers: &mut Peers,
) -> Result<AskTimeRecord, HarnessError> {
    match contender {
        Contender::Ferrotune { label, spec } => {
            ask_time_ferrotune(label, spec, n, dim, repeats, seed)
        }
        Contender::Peer { label } => Ok(peers.driver()?.ask_time(label, n, dim, repeats, seed)?),
    }
}

/// The (sampler, finished trials, dim) already measured in an ask-time file.
pub fn completed_ask_times(path: &Path) -> std::io::Result<HashSet<(String, u64, usize)>> {
    let mut done = HashSet::new();
    for_each_line_of(path, |r: AskTimeRecord| {
        done.insert((r.sampler, r.n_trials, r.dim));
    })?;
    Ok(done)
}

/// Measures every (contender, history size) not yet in `out` and appends one
/// [`AskTimeRecord`] per measurement as it finishes (so an interrupted call resumes).
pub fn ask_time_all(
    contenders: &[Contender],
    sizes: &[u64],
    dim: usize,
    repeats: usize,
    out: &Path,
    peers: &PeerConfig,
) -> Result<Progress, HarnessError> {
    check_labels(contenders)?;
    let done = completed_ask_times(out)?;
    let mut progress = Progress::default();
    let mut peers = Peers::new(peers.clone());
    let mut file = open_append(out)?;
    for &n in sizes {
        for contender in contenders {
            if done.contains(&(contender.label().to_owned(), n, dim)) {
                progress.skipped += 1;
                continue;
            }
            let record = ask_time(contender, n, dim, repeats, 0, &mut peers)?;
            append_lines(&mut file, &[record])?;
            progress.ran += 1;
        }
    }
    Ok(progress)
}

/// Errors of the harness: I/O, JSON, ferrotune itself, the peers, or the command line's
/// samplers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// Reading or writing the results file failed.
    #[error("results file: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be encoded.
    #[error("record: {0}")]
    Json(#[from] serde_json::Error),
    /// ferrotune failed.
    #[error(transparent)]
    Ferrotune(#[from] ferrotune::Error),
    /// A peer or its driver failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A sampler name that the harness does not know.
    #[error("unknown sampler `{name}`: {reason}")]
    UnknownSampler {
        /// The name as given.
        name: String,
        /// Why, with the names that are known.
        reason: String,
    },
    /// Two samplers of one comparison carry one label.
    #[error("two samplers are labelled `{0}`; their records would mix, so give each its own")]
    DuplicateLabel(String),
    /// A simulated scheduled run could not go on (a checkpoint that does not fit its
    /// problem, a trial the study failed, a scheduler that left every worker waiting).
    #[error("scheduled run: {0}")]
    Schedule(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incumbent_keeps_its_noise_free_value() {
        let problem = crate::problem::Noisy {
            base: crate::synthetic::SYNTHETIC[0],
            sigma: 1.0,
        };
        let mut run = RunRecords::new(&problem, "x", 0, 3);
        run.push(0, TrialState::Complete, Some(5.0), Some(4.0), 0.0);
        // A worse draw leaves the incumbent alone, whatever its noise-free value.
        run.push(1, TrialState::Complete, Some(6.0), Some(1.0), 0.0);
        run.push(2, TrialState::Complete, Some(3.0), Some(3.5), 0.0);
        let r = run.into_records();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.best_so_far, r.incumbent_expected))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(5.0), Some(4.0)),
                (Some(5.0), Some(4.0)),
                (Some(3.0), Some(3.5))
            ]
        );
    }
    use crate::report::{ask_time_markdown, read_jsonl};
    use crate::synthetic::SYNTHETIC;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("results.jsonl")
    }

    fn two_problems() -> Vec<Box<dyn Problem>> {
        vec![Box::new(SYNTHETIC[0]), Box::new(SYNTHETIC[1])]
    }

    #[test]
    fn runs_are_recorded_resumed_and_reported() {
        let out = temp("resume");
        let problems = two_problems();
        let samplers = [Contender::ferrotune(SamplerSpec::Random)];
        let peers = PeerConfig::default();
        let p = run_all(&problems, &samplers, &[0, 1], 30, &out, None, &peers).unwrap();
        assert_eq!(
            p,
            Progress {
                ran: 4,
                skipped: 0,
                left: 0
            }
        );
        let again = run_all(&problems, &samplers, &[0, 1, 2], 30, &out, None, &peers).unwrap();
        assert_eq!(
            again,
            Progress {
                ran: 2,
                skipped: 4,
                left: 0
            },
            "only the new seed runs"
        );
        let records: Vec<Record> = read_jsonl(&out).unwrap();
        assert_eq!(records.len(), 2 * 3 * 30);
        for run in records.chunks(30) {
            let mut best = f64::INFINITY;
            for (i, r) in run.iter().enumerate() {
                assert_eq!(r.trial, i as u64);
                best = best.min(r.value.unwrap());
                assert_eq!(r.best_so_far, Some(best));
                assert_eq!(r.version, RECORD_VERSION);
            }
        }
        // The same seed gives the same run.
        let mut no_peers = Peers::new(peers.clone());
        let rerun = run_one(problems[0].as_ref(), &samplers[0], 0, 30, &mut no_peers).unwrap();
        let first: Vec<_> = records
            .iter()
            .filter(|r| r.problem == problems[0].name() && r.seed == 0)
            .collect();
        assert_eq!(first.len(), 30);
        for (a, b) in rerun.iter().zip(first) {
            assert_eq!(a.value.map(f64::to_bits), b.value.map(f64::to_bits));
        }
        let md = crate::report::markdown(&records);
        assert!(
            md.contains("### branin") && md.contains("| random | 3 | 25: "),
            "{md}"
        );
    }

    #[test]
    fn a_spent_budget_leaves_runs_for_later() {
        let out = temp("budget");
        let one: Vec<Box<dyn Problem>> = vec![Box::new(SYNTHETIC[0])];
        let p = run_all(
            &one,
            &[Contender::ferrotune(SamplerSpec::Random)],
            &[0, 1, 2],
            10,
            &out,
            Some(Duration::ZERO),
            &PeerConfig::default(),
        )
        .unwrap();
        assert_eq!(
            p,
            Progress {
                ran: 0,
                skipped: 0,
                left: 3
            }
        );
    }

    #[test]
    fn every_command_line_sampler_gets_its_own_label() {
        let label = |text: &str| Contender::parse(text).unwrap().label().to_owned();
        assert_eq!(label("random"), "random");
        assert_eq!(label("sobol"), "qmc");
        assert_eq!(label("qmc"), "qmc");
        assert_eq!(label("halton"), "halton");
        assert_eq!(label("tpe"), "tpe");
        assert_eq!(label(" tpe-univariate"), "tpe-univariate");
        assert_eq!(
            label(r#"{"type":"tpe","multivariate":false}"#),
            "tpe-univariate"
        );
        assert_eq!(label(r#"{"type":"tpe","n_startup_trials":20}"#), "tpe");
        for (name, multivariate) in [("tpe-univariate", false), ("tpe", true)] {
            let Contender::Ferrotune { spec, .. } = Contender::parse(name).unwrap() else {
                panic!("{name} is ferrotune's")
            };
            assert!(
                matches!(spec, SamplerSpec::Tpe { multivariate: m, .. } if m == multivariate),
                "{name}: {spec:?}"
            );
        }
        for peer in [
            "optuna-tpe",
            "optuna-tpe-univariate",
            "rustuna-tpe",
            "python-random",
        ] {
            assert_eq!(
                Contender::parse(peer).unwrap(),
                Contender::Peer {
                    label: peer.to_owned()
                }
            );
        }
        let grid = Contender::parse("grid").unwrap_err().to_string();
        assert!(grid.contains("JSON spec"), "{grid}");
        let unknown = Contender::parse("cmaes").unwrap_err().to_string();
        assert!(
            unknown.contains("`cmaes`") && unknown.contains("tpe-univariate"),
            "{unknown}"
        );
        let dup = check_labels(&[
            Contender::parse("tpe").unwrap(),
            Contender::parse(r#"{"type":"tpe"}"#).unwrap(),
        ])
        .unwrap_err();
        assert!(
            matches!(dup, HarnessError::DuplicateLabel(ref l) if l == "tpe"),
            "{dup}"
        );
    }

    #[test]
    fn ask_times_are_measured_appended_resumed_and_tabled() {
        let out = temp("ask-time");
        let contenders = [
            Contender::parse("random").unwrap(),
            Contender::parse("tpe-univariate").unwrap(),
        ];
        let peers = PeerConfig::default();
        let p = ask_time_all(&contenders, &[20, 40], 3, 4, &out, &peers).unwrap();
        assert_eq!(p.ran, 4);
        let again = ask_time_all(&contenders, &[20, 40], 3, 4, &out, &peers).unwrap();
        assert_eq!(
            (again.ran, again.skipped),
            (0, 4),
            "measured sizes are skipped"
        );
        let records: Vec<AskTimeRecord> = read_jsonl(&out).unwrap();
        assert_eq!(records.len(), 4);
        for r in &records {
            assert_eq!((r.kind.as_str(), r.dim, r.ms.len()), ("ask_time", 3, 4));
            assert_eq!(r.history, "add_trial");
            assert!(r.ms.iter().all(|&ms| ms > 0.0 && ms.is_finite()), "{r:?}");
        }
        let md = ask_time_markdown(&records);
        assert!(
            md.contains("| sampler | history | n = 20 | n = 40 |"),
            "{md}"
        );
        assert!(md.contains("| tpe-univariate | add_trial | "), "{md}");
    }
}
