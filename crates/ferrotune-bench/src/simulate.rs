//! Simulated parallel workers on a simulated clock: the multi-fidelity problems of
//! [`crate::fidelity`] optimized by the real ferrotune [`Study`] (in-memory storage, sampler
//! and pruner from their specs) with `W` workers, without threads and without sleeping.
//!
//! The design follows Syne Tune's simulator backend (Salinas et al., "Syne Tune: a library
//! for large scale hyperparameter tuning and reproducible research", AutoML-Conf 2022) and
//! the multi-fidelity plan of `shared/reference/rust_ecosystem.md` §C3 item 5: each worker
//! asks the study for a trial ([`Study::ask`]; several live trials borrow the study at once),
//! runs it step by step, each step taking [`FidelityProblem::cost`] simulated seconds,
//! reports the step's value through [`Trial::report`] when the step ends and asks
//! [`Trial::should_prune`], so the pruner decides from storage exactly as in production, and
//! finishes it with [`Study::tell`] (last step reached) or [`Study::tell_pruned`]. Step ends
//! are events in a queue ordered by (simulated time, worker id), so the interleaving, and
//! with it the whole run, is a function of the seed.
//!
//! The run stops when its budget is spent: `budget_fe` full-fidelity equivalents, that is
//! `budget_fe · max_steps` steps started. A trial whose next step finds the budget spent is
//! told Fail ("budget spent"); its record keeps its last value.
//!
//! Each finished trial gives one [`Record`] (in finishing order), labelled
//! `{sampler}+{pruner}@{workers}` in its `sampler` field (see [`label`]), so the plain
//! report's grouping and resuming by (problem, sampler, seed) work unchanged. `best_so_far`
//! is the best value observed at the maximum fidelity (what a user could deploy: a pruned
//! trial never reaches it), as Syne Tune's and mfpbench's incumbent traces do for
//! multi-fidelity runs; `best_any_fidelity` tracks the best value seen at any step.
//! `overhead_ms` is 0: the simulated clock counts only the problem's costs, so the records
//! are bitwise repeatable.
//!
//! The same event loop ([`simulate_study`]) also drives a peer's study: through the
//! [`SimStudy`] trait it asks, reports (and asks the pruner) and tells either ferrotune's
//! [`Study`] or the Python driver's study of a peer sampler and peer pruner
//! ([`crate::peer::PeerSimStudy`]: Optuna's `ask` / `report` / `should_prune` / `tell`), so
//! the time and budget accounting, the event order and the records are the same for both;
//! a peer run is labelled like `optuna-tpe+optuna-successive_halving@16`.

use crate::fidelity::FidelityProblem;
use crate::harness::{
    append_lines, for_each_line_of, noise_seed, open_append, HarnessError, Record, RECORD_VERSION,
};
use crate::peer::{PeerConfig, Peers};
use crate::report::{peers_markdown, test_family, Comparison, PEER_PREFIXES};
use crate::stats::{median, quartiles};
use crate::svg::{Plot, Series};
use ferrotune::{Params, PrunerSpec, SamplerSpec, Study, Trial, TrialState};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// Which study a simulated run drives.
#[derive(Clone, Debug)]
pub enum SimEngine {
    /// ferrotune's own [`Study`], with this sampler and pruner.
    Ferrotune {
        /// The sampler.
        sampler: SamplerSpec,
        /// The pruner.
        pruner: PrunerSpec,
    },
    /// A peer's study through the Python driver ([`crate::peer::PeerSimStudy`]): the sampler and the
    /// pruner are the driver's, named by [`SimConfig::sampler_label`] and
    /// [`SimConfig::pruner_label`] (`optuna-tpe`, `optuna-median`, …).
    Peer,
}

/// One simulated run's settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The sampler's label, as the command line names it (`random`, `tpe`, `optuna-tpe`, …).
    pub sampler_label: String,
    /// The pruner's label (`nop`, `median`, `successive_halving`, `hyperband`,
    /// `optuna-median`, …).
    pub pruner_label: String,
    /// The study that runs it.
    pub engine: SimEngine,
    /// Simulated workers (at least 1).
    pub workers: u32,
    /// The budget in full-fidelity equivalents.
    pub budget_fe: f64,
}

impl SimConfig {
    /// The label the records carry: `{sampler}+{pruner}@{workers}`.
    pub fn label(&self) -> String {
        label(&self.sampler_label, &self.pruner_label, self.workers)
    }
}

/// `{sampler}+{pruner}@{workers}`: a simulated run's label (e.g. `tpe+successive_halving@16`),
/// held in its records' `sampler` field.
pub fn label(sampler: &str, pruner: &str, workers: u32) -> String {
    format!("{sampler}+{pruner}@{workers}")
}

/// Splits a label of [`label`] into sampler, pruner and workers.
pub fn split_label(label: &str) -> Option<(&str, &str, u32)> {
    let (rest, workers) = label.rsplit_once('@')?;
    let (sampler, pruner) = rest.split_once('+')?;
    Some((sampler, pruner, workers.parse().ok()?))
}

/// The pruners the command line knows by name: `nop`, `median`, `successive_halving` (or
/// `sh`, `asha`), `hyperband`, `wilcoxon` (Optuna's defaults, as [`PrunerSpec`]'s
/// constructors give them), or a JSON [`PrunerSpec`], labelled by its `type`.
pub fn parse_pruner(text: &str) -> Result<(String, PrunerSpec), HarnessError> {
    let text = text.trim();
    let spec = match text {
        "nop" | "none" => PrunerSpec::Nop,
        "median" => PrunerSpec::median(),
        "successive_halving" | "sh" | "asha" => PrunerSpec::successive_halving(),
        "hyperband" => PrunerSpec::hyperband(),
        "wilcoxon" => PrunerSpec::wilcoxon(),
        _ if text.starts_with('{') => {
            let spec: PrunerSpec = serde_json::from_str(text)?;
            let value = serde_json::to_value(&spec)?;
            let name = value
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("custom")
                .to_owned();
            return Ok((name, spec));
        }
        _ => {
            return Err(HarnessError::UnknownSampler {
                name: text.to_owned(),
                reason: "the pruners are nop, median, successive_halving (sh, asha), \
                         hyperband, wilcoxon, or a JSON spec such as \
                         {\"type\":\"hyperband\",\"reduction_factor\":3}"
                    .into(),
            })
        }
    };
    let name = match text {
        "none" => "nop",
        "sh" | "asha" => "successive_halving",
        other => other,
    };
    Ok((name.to_owned(), spec))
}

/// The peer pruner that goes with the peer sampler `sampler` for the command line's pruner
/// `pruner`: the pruner of the sampler's package (`optuna-tpe` with `median` gives
/// `optuna-median`; `nop` gives `optuna-nop`, Optuna's NopPruner), with the aliases of
/// [`parse_pruner`]; a name that already carries the package (`optuna-median`) stays. JSON
/// specs are ferrotune's only.
pub fn peer_pruner(sampler: &str, pruner: &str) -> Result<String, HarnessError> {
    let pruner = pruner.trim();
    let package = sampler.split_once('-').map_or(sampler, |(p, _)| p);
    if pruner.starts_with(&format!("{package}-")) {
        return Ok(pruner.to_owned());
    }
    let name = match pruner {
        "nop" | "none" => "nop",
        "sh" | "asha" | "successive_halving" => "successive_halving",
        "median" | "hyperband" | "wilcoxon" => pruner,
        _ => {
            return Err(HarnessError::UnknownSampler {
                name: pruner.to_owned(),
                reason: format!(
                    "the peer sampler `{sampler}` runs with its own package's pruners: nop, \
                     median, successive_halving (sh, asha), hyperband, wilcoxon"
                ),
            })
        }
    };
    Ok(format!("{package}-{name}"))
}

/// How the event loop ends a trial.
#[derive(Clone, Debug, PartialEq)]
pub enum SimOutcome {
    /// Its last step ended with this value.
    Complete(f64),
    /// The pruner stopped it.
    Pruned,
    /// It could not go on, for this reason (the budget was spent).
    Failed(&'static str),
}

/// The study a simulated run drives, one small interface for ferrotune's [`Study`] and a
/// peer's ([`crate::peer::PeerSimStudy`]), so both go through the very same event loop of [`simulate`].
pub trait SimStudy {
    /// A live trial (several are alive at once, one per busy worker).
    type Trial<'s>
    where
        Self: 's;

    /// Starts a trial and lets `problem` suggest its parameters.
    fn ask<'s>(&'s self, problem: &dyn FidelityProblem) -> Result<Self::Trial<'s>, HarnessError>;

    /// The trial's number (what the records carry).
    fn number(trial: &Self::Trial<'_>) -> u64;

    /// The trial's parameters.
    fn params<'a>(trial: &'a Self::Trial<'_>) -> &'a Params;

    /// Reports the value of the step that ended; when `should_prune`, then asks the pruner
    /// whether to stop the trial (`false` otherwise).
    fn report(
        &self,
        trial: &mut Self::Trial<'_>,
        step: u64,
        value: f64,
        should_prune: bool,
    ) -> Result<bool, HarnessError>;

    /// Finishes the trial; the state it ended in.
    fn tell(&self, trial: Self::Trial<'_>, outcome: SimOutcome)
        -> Result<TrialState, HarnessError>;
}

impl SimStudy for Study {
    type Trial<'s> = Trial<'s>;

    fn ask<'s>(&'s self, problem: &dyn FidelityProblem) -> Result<Trial<'s>, HarnessError> {
        let mut trial = Study::ask(self)?;
        problem.suggest(&mut trial)?;
        Ok(trial)
    }

    fn number(trial: &Trial<'_>) -> u64 {
        trial.number()
    }

    fn params<'a>(trial: &'a Trial<'_>) -> &'a Params {
        &trial.frozen().params
    }

    fn report(
        &self,
        trial: &mut Trial<'_>,
        step: u64,
        value: f64,
        should_prune: bool,
    ) -> Result<bool, HarnessError> {
        trial.report(step, value)?;
        Ok(should_prune && trial.should_prune()?)
    }

    fn tell(&self, trial: Trial<'_>, outcome: SimOutcome) -> Result<TrialState, HarnessError> {
        let done = match outcome {
            SimOutcome::Complete(value) => Study::tell(self, trial, value)?,
            SimOutcome::Pruned => self.tell_pruned(trial)?,
            SimOutcome::Failed(reason) => self.tell_failed(trial, reason)?,
        };
        Ok(done.state)
    }
}

/// A trial running on a worker.
struct Running<T> {
    trial: T,
    /// The step now running (its end is the worker's next event).
    step: u64,
    /// The value of the last step that ended.
    last_value: Option<f64>,
    /// When the trial started.
    start: f64,
}

/// The run's tallies while it goes.
struct Tally {
    /// Steps started so far.
    steps: u64,
    /// Steps the budget allows.
    budget_steps: u64,
    max_steps: u64,
    best_max: Option<f64>,
    best_any: Option<f64>,
}

impl Tally {
    fn consumed(&self) -> f64 {
        self.steps as f64 / self.max_steps as f64
    }
}

/// Runs `problem` with `config` and `seed` on the simulated clock; returns one record per
/// finished trial, in the order they finished (ties in worker order). A peer run starts the
/// driver of `peers` if it is not running yet.
pub fn simulate(
    problem: &dyn FidelityProblem,
    config: &SimConfig,
    seed: u64,
    peers: &mut Peers,
) -> Result<Vec<Record>, HarnessError> {
    match &config.engine {
        SimEngine::Ferrotune { sampler, pruner } => {
            let study = Study::builder()
                .name(format!("{}-{}", problem.name(), config.label()))
                .sampler(sampler.clone())
                .pruner(pruner.clone())
                .seed(seed)
                .build()?;
            simulate_study(&study, problem, config, seed)
        }
        SimEngine::Peer => {
            let driver = peers.driver()?;
            let study = driver.sim_study(&config.sampler_label, &config.pruner_label, seed)?;
            simulate_study(&study, problem, config, seed)
        }
    }
}

/// The event loop of [`simulate`], driving `study`.
pub fn simulate_study<S: SimStudy>(
    study: &S,
    problem: &dyn FidelityProblem,
    config: &SimConfig,
    seed: u64,
) -> Result<Vec<Record>, HarnessError> {
    let workers = config.workers.max(1) as usize;
    let max_steps = problem.max_steps().max(1);
    let mut tally = Tally {
        steps: 0,
        budget_steps: (config.budget_fe.max(0.0) * max_steps as f64).floor() as u64,
        max_steps,
        best_max: None,
        best_any: None,
    };
    let label = config.label();
    let record = |running: &Running<S::Trial<'_>>,
                  state: TrialState,
                  end: f64,
                  worker: usize,
                  tally: &Tally|
     -> Record {
        Record {
            version: RECORD_VERSION,
            problem: problem.name(),
            sampler: label.clone(),
            seed,
            trial: S::number(&running.trial),
            state,
            value: running.last_value,
            best_so_far: tally.best_max,
            incumbent_expected: None,
            overhead_ms: 0.0,
            step: Some(if running.last_value.is_some() {
                running.step
            } else {
                0
            }),
            fidelity: Some(if running.last_value.is_some() {
                running.step as f64 / max_steps as f64
            } else {
                0.0
            }),
            consumed_budget: Some(tally.consumed()),
            sim_start: Some(running.start),
            sim_end: Some(end),
            worker: u32::try_from(worker).ok(),
            best_any_fidelity: tally.best_any,
        }
    };
    let mut records = Vec::new();
    let mut live: Vec<Option<Running<S::Trial<'_>>>> = (0..workers).map(|_| None).collect();
    let mut next_event: Vec<Option<f64>> = vec![None; workers];
    // At time 0, every worker asks for a trial, in worker order.
    for w in 0..workers {
        start_trial(
            study,
            problem,
            &mut tally,
            &mut live[w],
            &mut next_event[w],
            0.0,
        )?;
    }
    while let Some((w, now)) = next_event
        .iter()
        .enumerate()
        .filter_map(|(w, t)| t.map(|t| (w, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    {
        next_event[w] = None;
        let Some(mut running) = live[w].take() else {
            continue;
        };
        let value = problem.evaluate_at(
            S::params(&running.trial),
            running.step,
            noise_seed(seed, S::number(&running.trial)),
        );
        let last = running.step >= max_steps;
        let prune = study.report(&mut running.trial, running.step, value, !last)?;
        running.last_value = Some(value);
        if tally.best_any.is_none_or(|b| value < b) {
            tally.best_any = Some(value);
        }
        let finished = if last {
            if tally.best_max.is_none_or(|b| value < b) {
                tally.best_max = Some(value);
            }
            Some(SimOutcome::Complete(value))
        } else if prune {
            Some(SimOutcome::Pruned)
        } else if tally.steps >= tally.budget_steps {
            Some(SimOutcome::Failed("budget spent"))
        } else {
            None
        };
        match finished {
            None => {
                running.step += 1;
                tally.steps += 1;
                next_event[w] = Some(now + step_cost::<S>(problem, &running));
                live[w] = Some(running);
            }
            Some(outcome) => {
                let r = record(&running, TrialState::Running, now, w, &tally);
                let state = study.tell(running.trial, outcome)?;
                records.push(Record { state, ..r });
                start_trial(
                    study,
                    problem,
                    &mut tally,
                    &mut live[w],
                    &mut next_event[w],
                    now,
                )?;
            }
        }
    }
    Ok(records)
}

/// The simulated seconds of the running step of `running`.
fn step_cost<S: SimStudy>(problem: &dyn FidelityProblem, running: &Running<S::Trial<'_>>) -> f64 {
    problem
        .cost(S::params(&running.trial), running.step)
        .max(0.0)
}

/// Starts a new trial on a worker at `now` (its first step) when the budget allows one.
fn start_trial<'s, S: SimStudy>(
    study: &'s S,
    problem: &dyn FidelityProblem,
    tally: &mut Tally,
    slot: &mut Option<Running<S::Trial<'s>>>,
    next_event: &mut Option<f64>,
    now: f64,
) -> Result<(), HarnessError> {
    if tally.steps >= tally.budget_steps {
        return Ok(());
    }
    let trial = study.ask(problem)?;
    tally.steps += 1;
    let running = Running {
        trial,
        step: 1,
        last_value: None,
        start: now,
    };
    *next_event = Some(now + step_cost::<S>(problem, &running));
    *slot = Some(running);
    Ok(())
}

/// What [`simulate_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SimProgress {
    /// Runs executed now.
    pub ran: usize,
    /// Runs found in the file and skipped.
    pub skipped: usize,
}

/// Runs every (problem, config, seed) whose label has no record yet in `out` (a run's
/// records are appended together when it ends, so a run in the file is complete), appending
/// each run's records.
pub fn simulate_all(
    problems: &[Box<dyn FidelityProblem>],
    configs: &[SimConfig],
    seeds: &[u64],
    out: &Path,
    peers: &PeerConfig,
) -> Result<SimProgress, HarnessError> {
    let mut peers = Peers::new(peers.clone());
    let mut done = HashSet::new();
    for_each_line_of(out, |r: Record| {
        if r.is_simulated() {
            done.insert((r.problem, r.sampler, r.seed));
        }
    })?;
    let mut file = open_append(out)?;
    let mut progress = SimProgress::default();
    for problem in problems {
        for config in configs {
            for &seed in seeds {
                if done.contains(&(problem.name(), config.label(), seed)) {
                    progress.skipped += 1;
                    continue;
                }
                let records = simulate(problem.as_ref(), config, seed, &mut peers)?;
                append_lines(&mut file, &records)?;
                progress.ran += 1;
            }
        }
    }
    Ok(progress)
}

/// Tests every simulated ferrotune contender `S+P@W` against its peer counterpart
/// `optuna-S+optuna-P@W` (the same sampler name and pruner in the peer's package, the same
/// workers; likewise for every prefix of [`PEER_PREFIXES`]) on each problem both ran:
/// the final best values at maximum fidelity of all seeds (`+∞` when a run completed no
/// trial), one-sided Mann–Whitney U tests with Holm's correction across the problems of a
/// pairing ([`test_family`]). The comparison's budget is the largest budget (in
/// full-fidelity equivalents, rounded) the pairing's runs consumed.
pub fn compare_simulated(records: &[Record]) -> Vec<Comparison> {
    // label → problem → final best per seed, and label → largest budget consumed.
    let mut finals: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    let mut budgets: BTreeMap<&str, f64> = BTreeMap::new();
    for (problem, by_label) in group_runs(records, |r| Some(r.problem.as_str())) {
        for (l, by_seed) in by_label {
            let consumed = by_seed.values().flatten().filter_map(|r| r.consumed_budget);
            let b = budgets.entry(l).or_insert(0.0);
            *b = consumed.fold(*b, f64::max);
            finals.entry(l).or_default().insert(
                problem,
                by_seed.values().map(|run| final_best(run)).collect(),
            );
        }
    }
    let mut out = Vec::new();
    for (&ours, by_problem) in &finals {
        let Some((sampler, pruner, workers)) = split_label(ours) else {
            continue;
        };
        if PEER_PREFIXES.iter().any(|p| sampler.starts_with(p)) {
            continue;
        }
        for prefix in PEER_PREFIXES {
            let peer_sampler = format!("{prefix}{sampler}");
            let Ok(peer_pruner) = peer_pruner(&peer_sampler, pruner) else {
                continue;
            };
            let peer = label(&peer_sampler, &peer_pruner, workers);
            let Some(theirs) = finals.get(peer.as_str()) else {
                continue;
            };
            let samples: Vec<(String, Vec<f64>, Vec<f64>)> = by_problem
                .iter()
                .filter_map(|(problem, x)| {
                    let y = theirs.get(problem)?;
                    Some(((*problem).to_owned(), x.clone(), y.clone()))
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            let budget = budgets[ours].max(budgets.get(peer.as_str()).copied().unwrap_or(0.0));
            out.push(Comparison {
                ferrotune: ours.to_owned(),
                peer,
                budget: budget.round() as u64,
                rows: test_family(samples),
            });
        }
    }
    out
}

/// One contender's runs: seed → its records in finishing order.
pub(crate) type SeedRuns<'r> = BTreeMap<u64, Vec<&'r Record>>;

/// The simulated records grouped by `key` (records without one are left out), then by
/// label and seed, each run's records in finishing order.
fn group_runs<'r, K: Ord>(
    records: &'r [Record],
    key: impl Fn(&'r Record) -> Option<K>,
) -> BTreeMap<K, BTreeMap<&'r str, SeedRuns<'r>>> {
    let mut runs: BTreeMap<K, BTreeMap<&str, SeedRuns>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.is_simulated()) {
        let Some(k) = key(r) else {
            continue;
        };
        runs.entry(k)
            .or_default()
            .entry(&r.sampler)
            .or_default()
            .entry(r.seed)
            .or_default()
            .push(r);
    }
    runs
}

/// Points per curve of [`plots`].
const PLOT_POINTS: usize = 60;

/// Per problem and worker count (keyed `<problem>@<W>`), the plot of each contender's median
/// best value at maximum fidelity against simulated time, with its interquartile range
/// across seeds; a time at which fewer than half of the runs have a value is left out. A
/// contender keeps its color in every plot (its index among all labels).
pub fn plots(records: &[Record]) -> BTreeMap<String, Plot> {
    // (problem, workers) → label → seed → records.
    let runs = group_runs(records, |r| {
        split_label(&r.sampler).map(|(_, _, workers)| (r.problem.as_str(), workers))
    });
    let style: BTreeMap<&str, usize> = runs
        .values()
        .flat_map(|by_label| by_label.keys().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, i))
        .collect();
    let mut out = BTreeMap::new();
    for ((problem, workers), by_label) in &runs {
        let t_max = by_label
            .values()
            .flat_map(|s| s.values())
            .flatten()
            .filter_map(|r| r.sim_end)
            .fold(0.0, f64::max);
        let series = by_label
            .iter()
            .map(|(label, by_seed)| {
                let points = (1..=PLOT_POINTS)
                    .filter_map(|i| {
                        let t = t_max * i as f64 / PLOT_POINTS as f64;
                        let bests: Vec<f64> = by_seed
                            .values()
                            .map(|run| {
                                best_by(run, t, |r: &Record| r.sim_end).unwrap_or(f64::INFINITY)
                            })
                            .collect();
                        let (med, lo, hi) = quartiles(bests);
                        // An upper quartile without a value yet is drawn at the median.
                        med.is_finite()
                            .then(|| (t, med, lo, if hi.is_finite() { hi } else { med }))
                    })
                    .collect();
                Series {
                    label: (*label).to_owned(),
                    style: style.get(label).copied().unwrap_or(0),
                    points,
                }
            })
            .collect();
        out.insert(
            format!("{problem}@{workers}"),
            Plot {
                title: format!("{problem}, {workers} simulated worker(s)"),
                subtitle: "best value at maximum fidelity: median (line) and interquartile \
                           range (band) across seeds"
                    .to_owned(),
                x_label: "simulated time (s)".to_owned(),
                y_label: "best value".to_owned(),
                series,
            },
        );
    }
    out
}

/// The best value at maximum fidelity reached by `run` (records of one seed, in finishing
/// order) by the time `key` of a record is at most `limit`.
fn best_by(run: &[&Record], limit: f64, key: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
    run.iter()
        .filter(|r| key(r).is_some_and(|k| k <= limit))
        .filter_map(|r| r.best_so_far)
        .reduce(f64::min)
}

/// When the median over seeds of the best value at maximum fidelity first is at most
/// `target` (`+∞` if never): the median curve of the runs, as the plots draw it, crossing
/// `target`. (A median of per-seed times would be infinite as soon as half the seeds never
/// reach the target, which is how an even number of seeds meets its own median.)
pub(crate) fn median_time_to(runs: &SeedRuns, target: f64) -> f64 {
    // Every (time, seed, best so far) event, in time order.
    let mut events: Vec<(f64, usize, f64)> = runs
        .values()
        .enumerate()
        .flat_map(|(i, run)| {
            run.iter()
                .filter_map(move |r| Some((r.sim_end?, i, r.best_so_far?)))
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut current = vec![f64::INFINITY; runs.len()];
    let mut k = 0;
    while k < events.len() {
        let now = events[k].0;
        // Apply every event at this time before looking at the median.
        while k < events.len() && events[k].0.total_cmp(&now).is_eq() {
            let (_, seed, best) = events[k];
            current[seed] = current[seed].min(best);
            k += 1;
        }
        if median(&current) <= target {
            return now;
        }
    }
    f64::INFINITY
}

/// The best value at maximum fidelity of a whole run (`+∞` if none).
fn final_best(run: &[&Record]) -> f64 {
    run.iter()
        .filter_map(|r| r.best_so_far)
        .reduce(f64::min)
        .unwrap_or(f64::INFINITY)
}

/// A value for a table; `—` when there is none (NaN, or ∞: no value yet).
fn cell(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "—".to_owned()
    }
}

/// The markdown report of simulated runs, per problem: the median over seeds of the best
/// value at maximum fidelity against simulated wall-clock time (at fractions of the
/// problem's longest run) and against consumed budget (at fractions of the largest budget
/// consumed), then, for each worker count, the simulated time each contender needs to reach
/// the final median of random search without pruning (`random+nop@W`), and random's time
/// divided by it (the speed-up; `—` when a median time is never reached). Records of plain
/// runs are ignored.
pub fn simulate_markdown(records: &[Record]) -> String {
    // problem → label → seed → records in finishing order.
    let runs = group_runs(records, |r| Some(r.problem.as_str()));
    let mut out = String::new();
    if runs.is_empty() {
        return out;
    }
    let _ = writeln!(out, "# Simulated multi-fidelity runs\n");
    let _ = writeln!(
        out,
        "Median over seeds of the best value observed at maximum fidelity; `—`: none yet.\n"
    );
    const FRACTIONS: [f64; 5] = [1.0 / 64.0, 1.0 / 16.0, 0.25, 0.5, 1.0];
    for (problem, by_label) in &runs {
        let all = || by_label.values().flat_map(|s| s.values()).flatten();
        let t_max = all().filter_map(|r| r.sim_end).fold(0.0, f64::max);
        let b_max = all().filter_map(|r| r.consumed_budget).fold(0.0, f64::max);
        let seeds = by_label.values().map(BTreeMap::len).max().unwrap_or(0);
        let _ = writeln!(out, "## {problem} ({seeds} seeds)\n");
        for (title, limit, key) in [
            (
                "simulated time",
                t_max,
                (|r: &Record| r.sim_end) as fn(&Record) -> Option<f64>,
            ),
            (
                "consumed budget (full-fidelity equivalents)",
                b_max,
                |r: &Record| r.consumed_budget,
            ),
        ] {
            let _ = write!(out, "| contender | trials |");
            for f in FRACTIONS {
                let _ = write!(
                    out,
                    " {} = {:.3} |",
                    if title == "simulated time" { "t" } else { "b" },
                    f * limit
                );
            }
            let _ = writeln!(out, "\n|---|---|{}", "---|".repeat(FRACTIONS.len()));
            for (label, by_seed) in by_label {
                let trials: Vec<f64> = by_seed.values().map(|v| v.len() as f64).collect();
                let _ = write!(
                    out,
                    "| {label} | {} |",
                    cell(median(&trials)).trim_end_matches(".0000")
                );
                for f in FRACTIONS {
                    let bests: Vec<f64> = by_seed
                        .values()
                        .map(|run| best_by(run, f * limit, key).unwrap_or(f64::INFINITY))
                        .collect();
                    let _ = write!(out, " {} |", cell(median(&bests)));
                }
                let _ = writeln!(out);
            }
            let _ = writeln!(out, "\n_(columns: {title})_\n");
        }
        // Time to reach random search's final median, per worker count.
        let workers: BTreeSet<u32> = by_label
            .keys()
            .filter_map(|l| split_label(l).map(|(_, _, w)| w))
            .collect();
        let mut rows = Vec::new();
        for w in workers {
            let reference = label("random", "nop", w);
            let Some(random_runs) = by_label.get(reference.as_str()) else {
                continue;
            };
            let finals: Vec<f64> = random_runs.values().map(|run| final_best(run)).collect();
            let target = median(&finals);
            if !target.is_finite() {
                continue;
            }
            let time_of = |runs: &SeedRuns| median_time_to(runs, target);
            let t_random = time_of(random_runs);
            for (l, by_seed) in by_label {
                if split_label(l).map(|(_, _, lw)| lw) != Some(w) {
                    continue;
                }
                let t = time_of(by_seed);
                let speedup = (t.is_finite() && t_random.is_finite()).then(|| t_random / t);
                rows.push(format!(
                    "| {l} | {target:.4} | {} | {} |",
                    if t.is_finite() {
                        format!("{t:.3}")
                    } else {
                        "—".into()
                    },
                    speedup.map_or_else(|| "—".to_owned(), |s| format!("{s:.2}×"))
                ));
            }
        }
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "Simulated time at which the median over seeds of the best value first reaches \
                 random search's final median (same workers):\n\n\
                 | contender | target | time | speed-up vs random |\n|---|---|---|---|"
            );
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
            let _ = writeln!(out);
        }
        // The contender with the best final median.
        let best = by_label
            .iter()
            .map(|(l, by_seed)| {
                let f: Vec<f64> = by_seed.values().map(|run| final_best(run)).collect();
                (*l, median(&f))
            })
            .filter(|(_, v)| v.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((best, v)) = best {
            let _ = writeln!(out, "Best final median: **{best}** ({v:.4}).\n");
        }
    }
    let comparisons = compare_simulated(records);
    if !comparisons.is_empty() {
        let _ = writeln!(
            out,
            "Final best values at maximum fidelity, ferrotune's sampler and pruner against the \
             peer's of the same names with the same workers.\n"
        );
        peers_markdown(&mut out, &comparisons, "full-fidelity equivalents", |_| {
            false
        });
    }
    out
}

/// Test check shared by the simulators: the records' intervals `[start, end)` never overlap
/// more than `w` at once, a worker runs one trial at a time, and every worker is one of `w`.
#[cfg(test)]
pub(crate) fn assert_workers_respected(records: &[Record], w: u32) {
    let mut events: Vec<(f64, i32)> = records
        .iter()
        .flat_map(|r| {
            [
                (r.sim_start.unwrap_or(0.0), 1),
                (r.sim_end.unwrap_or(0.0), -1),
            ]
        })
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0;
    for (_, d) in events {
        now += d;
        assert!(now <= w as i32, "{now} trials at once with {w} workers");
    }
    for worker in 0..w {
        let mut mine: Vec<&Record> = records
            .iter()
            .filter(|r| r.worker == Some(worker))
            .collect();
        mine.sort_by(|a, b| a.sim_start.partial_cmp(&b.sim_start).expect("finite"));
        for pair in mine.windows(2) {
            assert!(pair[0].sim_end <= pair[1].sim_start);
        }
    }
    assert!(records.iter().all(|r| r.worker.is_some_and(|x| x < w)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::{find_fidelity_problems, LearningCurves};
    use crate::peer::test_support::{plain_python, real_peers};

    fn config(sampler: &str, pruner: &str, workers: u32, budget_fe: f64) -> SimConfig {
        let sampler_spec = match crate::harness::Contender::parse(sampler) {
            Ok(crate::harness::Contender::Ferrotune { spec, .. }) => spec,
            other => panic!("not a ferrotune sampler: {other:?}"),
        };
        let (pruner_label, pruner_spec) = parse_pruner(pruner).expect("known pruner");
        SimConfig {
            sampler_label: sampler.to_owned(),
            pruner_label,
            engine: SimEngine::Ferrotune {
                sampler: sampler_spec,
                pruner: pruner_spec,
            },
            workers,
            budget_fe,
        }
    }

    /// A peer run's settings (`sampler`, `pruner`: the driver's names).
    fn peer_config(sampler: &str, pruner: &str, workers: u32, budget_fe: f64) -> SimConfig {
        SimConfig {
            sampler_label: sampler.to_owned(),
            pruner_label: pruner.to_owned(),
            engine: SimEngine::Peer,
            workers,
            budget_fe,
        }
    }

    /// A ferrotune run (no peer is started).
    fn sim(problem: &dyn FidelityProblem, config: &SimConfig, seed: u64) -> Vec<Record> {
        simulate(
            problem,
            config,
            seed,
            &mut Peers::new(PeerConfig::default()),
        )
        .expect("runs")
    }

    #[test]
    fn simulated_contenders_are_paired_with_the_peer_of_the_same_names() {
        let p = LearningCurves;
        let ours = config("random", "median", 2, 4.0);
        let mut records = Vec::new();
        for seed in 0..6 {
            let run = sim(&p, &ours, seed);
            // A "peer" whose every value is worse by 1 (relabelled copies of our runs).
            records.extend(run.iter().cloned().map(|mut r| {
                r.sampler = label("optuna-random", "optuna-median", 2);
                r.best_so_far = r.best_so_far.map(|b| b + 1.0);
                r
            }));
            records.extend(run);
        }
        let comparisons = compare_simulated(&records);
        assert_eq!(comparisons.len(), 1, "{comparisons:?}");
        let c = &comparisons[0];
        assert_eq!(c.ferrotune, "random+median@2");
        assert_eq!(c.peer, "optuna-random+optuna-median@2");
        assert_eq!(c.budget, 4);
        assert_eq!(c.tally(), (1, 0, 0, 0));
        // Swapped, the same data is a loss.
        let swapped: Vec<Record> = records
            .into_iter()
            .map(|mut r| {
                r.best_so_far = r.best_so_far.map(|b| {
                    if r.sampler.starts_with("optuna") {
                        b - 2.0
                    } else {
                        b
                    }
                });
                r
            })
            .collect();
        assert_eq!(compare_simulated(&swapped)[0].tally(), (0, 0, 1, 0));
        assert!(simulate_markdown(&swapped)
            .contains("random+median@2 vs optuna-random+optuna-median@2"));
    }

    #[test]
    fn plots_show_each_worker_count_with_non_increasing_medians() {
        let p = LearningCurves;
        let mut records = Vec::new();
        for (pruner, workers) in [("nop", 1), ("median", 1), ("median", 4)] {
            for seed in 0..3 {
                records.extend(sim(&p, &config("random", pruner, workers, 5.0), seed));
            }
        }
        let plots = plots(&records);
        let keys: Vec<&str> = plots.keys().map(String::as_str).collect();
        assert_eq!(keys, ["lc_hartmann6@1", "lc_hartmann6@4"]);
        assert_eq!(plots["lc_hartmann6@1"].series.len(), 2);
        for plot in plots.values() {
            for series in &plot.series {
                assert!(!series.points.is_empty(), "{}", series.label);
                for w in series.points.windows(2) {
                    assert!(w[0].0 < w[1].0 && w[1].1 <= w[0].1, "{:?}", series.points);
                }
                assert!(series
                    .points
                    .iter()
                    .all(|&(_, m, lo, hi)| lo <= m && m <= hi));
            }
        }
    }

    #[test]
    fn median_curve_time_matches_a_brute_force_sweep() {
        let p = LearningCurves;
        for seeds in [3_u64, 4] {
            let mut runs: SeedRuns = BTreeMap::new();
            let all: Vec<Vec<Record>> = (0..seeds)
                .map(|seed| sim(&p, &config("random", "median", 3, 6.0), seed))
                .collect();
            for (seed, run) in all.iter().enumerate() {
                runs.insert(seed as u64, run.iter().collect());
            }
            let mut times: Vec<f64> = all.iter().flatten().filter_map(|r| r.sim_end).collect();
            times.sort_by(f64::total_cmp);
            let curve = |t: f64| {
                let bests: Vec<f64> = runs
                    .values()
                    .map(|run| best_by(run, t, |r: &Record| r.sim_end).unwrap_or(f64::INFINITY))
                    .collect();
                median(&bests)
            };
            let end = curve(f64::INFINITY);
            let middle = curve(times[times.len() / 2]);
            for target in [end, middle, (end + middle) / 2.0, end - 1.0] {
                let expected = times
                    .iter()
                    .copied()
                    .find(|&t| curve(t) <= target)
                    .unwrap_or(f64::INFINITY);
                assert_eq!(median_time_to(&runs, target).to_bits(), expected.to_bits());
            }
            // An even number of seeds still reaches its own final median.
            assert!(median_time_to(&runs, end).is_finite());
        }
    }

    #[test]
    fn same_seed_same_records() {
        let p = LearningCurves;
        let c = config("tpe", "successive_halving", 4, 8.0);
        let a = sim(&p, &c, 3);
        let b = sim(&p, &c, 3);
        assert_eq!(a, b);
        assert!(!a.is_empty());
        let other = sim(&p, &c, 4);
        assert_ne!(a, other);
    }

    #[test]
    fn never_more_than_w_concurrent_trials() {
        for problem in find_fidelity_problems(&["mfh3_good".into(), "lc_hartmann6".into()], None)
            .expect("known")
        {
            for w in [1, 3, 8] {
                let records = sim(problem.as_ref(), &config("random", "median", w, 6.0), 1);
                assert_workers_respected(&records, w);
            }
        }
    }

    #[test]
    fn the_budget_is_respected() {
        let p = LearningCurves;
        for pruner in ["nop", "hyperband"] {
            let budget = 5.0;
            let records = sim(&p, &config("random", pruner, 4, budget), 0);
            let steps: u64 = records.iter().filter_map(|r| r.step).sum();
            assert!(steps as f64 <= budget * 50.0);
            let last = records
                .iter()
                .filter_map(|r| r.consumed_budget)
                .fold(0.0, f64::max);
            assert!(last <= budget + 1e-12 && last > budget - 1.0, "{last}");
        }
    }

    #[test]
    fn pruning_saves_budget() {
        let p = LearningCurves;
        let steps_per_trial = |pruner: &str| {
            let mut total = 0.0;
            for seed in 0..3 {
                let records = sim(&p, &config("tpe", pruner, 1, 20.0), seed);
                let steps: u64 = records.iter().filter_map(|r| r.step).sum();
                total += steps as f64 / records.len() as f64;
            }
            total / 3.0
        };
        let plain = steps_per_trial("nop");
        let sh = steps_per_trial("successive_halving");
        assert!(sh < 0.5 * plain, "SH {sh} steps per trial vs {plain}");
    }

    #[test]
    fn labels_round_trip_and_report_renders() {
        assert_eq!(
            split_label("tpe+successive_halving@16"),
            Some(("tpe", "successive_halving", 16))
        );
        assert!(parse_pruner("asha").is_ok());
        assert!(parse_pruner("bogus").is_err());
        let p = LearningCurves;
        let mut records = Vec::new();
        for (s, pr) in [("random", "nop"), ("tpe", "successive_halving")] {
            for seed in 0..2 {
                records.extend(sim(&p, &config(s, pr, 2, 6.0), seed));
            }
        }
        let md = simulate_markdown(&records);
        assert!(md.contains("## lc_hartmann6"), "{md}");
        assert!(md.contains("tpe+successive_halving@2"), "{md}");
        assert!(md.contains("speed-up vs random"), "{md}");
    }

    #[test]
    fn simulate_all_resumes() {
        let dir = std::env::temp_dir().join(format!("ferrotune-sim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = dir.join("sim.jsonl");
        let _ = std::fs::remove_file(&out);
        let problems = find_fidelity_problems(&["branin_mf".into()], None).expect("known");
        let configs = [config("random", "nop", 2, 3.0)];
        let first =
            simulate_all(&problems, &configs, &[0, 1], &out, &PeerConfig::default()).expect("runs");
        assert_eq!(first, SimProgress { ran: 2, skipped: 0 });
        let again = simulate_all(
            &problems,
            &configs,
            &[0, 1, 2],
            &out,
            &PeerConfig::default(),
        )
        .expect("runs");
        assert_eq!(again, SimProgress { ran: 1, skipped: 2 });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn peer_pruners_pair_with_their_sampler() {
        let pair = |s: &str, p: &str| peer_pruner(s, p).expect("known");
        assert_eq!(pair("optuna-tpe", "median"), "optuna-median");
        assert_eq!(pair("optuna-random", "sh"), "optuna-successive_halving");
        assert_eq!(pair("optuna-tpe", "nop"), "optuna-nop");
        assert_eq!(pair("optuna-tpe", "optuna-hyperband"), "optuna-hyperband");
        assert_eq!(pair("python-random", "median"), "python-median");
        assert!(peer_pruner("optuna-tpe", "{\"type\":\"median\"}").is_err());
        assert_eq!(
            split_label(&label("optuna-tpe", "optuna-successive_halving", 16)),
            Some(("optuna-tpe", "optuna-successive_halving", 16))
        );
    }

    /// Checks the records of one simulated run: one worker per trial at a time, within the
    /// budget, trial numbers unique.
    fn check_sim(records: &[Record], workers: u32, budget_fe: f64, max_steps: u64) {
        assert!(!records.is_empty());
        let steps: u64 = records.iter().filter_map(|r| r.step).sum();
        assert!(
            steps as f64 <= budget_fe * max_steps as f64,
            "{steps} steps"
        );
        let mut numbers: Vec<u64> = records.iter().map(|r| r.trial).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), records.len());
        assert!(records
            .iter()
            .all(|r| r.worker.is_some_and(|w| w < workers)));
    }

    #[test]
    fn the_protocol_runs_a_simulated_peer_study_with_live_trials() {
        let Some(peer_python) = plain_python() else {
            return;
        };
        let p = LearningCurves;
        let mut peers = Peers::new(peer_python);
        let c = peer_config("python-random", "python-median", 4, 6.0);
        let a = simulate(&p, &c, 5, &mut peers).expect("runs");
        check_sim(&a, 4, 6.0, p.max_steps());
        assert!(a
            .iter()
            .all(|r| r.sampler == "python-random+python-median@4"));
        assert!(a.iter().any(|r| r.state == TrialState::Pruned), "{a:?}");
        assert!(a.iter().any(|r| r.state == TrialState::Complete), "{a:?}");
        assert!(a.iter().any(|r| r.state == TrialState::Fail), "{a:?}");
        // Seeded: the same run again (same driver) gives the same records.
        assert_eq!(a, simulate(&p, &c, 5, &mut peers).expect("runs"));
        // The proxy routes each worker's suggestions to its own peer trial: the parameters
        // each peer trial got are distinct points.
        let values: BTreeSet<u64> = a.iter().filter_map(|r| r.value.map(f64::to_bits)).collect();
        assert!(values.len() > a.len() / 2, "{a:?}");
        // Without pruning nothing is pruned.
        let plain = simulate(
            &p,
            &peer_config("python-random", "python-nop", 2, 4.0),
            5,
            &mut peers,
        )
        .expect("runs");
        assert!(plain.iter().all(|r| r.state != TrialState::Pruned));
        // An unknown or mismatched pruner is a clear error, and the driver carries on.
        let err = simulate(
            &p,
            &peer_config("python-random", "optuna-median", 1, 2.0),
            0,
            &mut peers,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not go with"), "{err}");
        let err = simulate(
            &p,
            &peer_config("python-random", "python-bogus", 1, 2.0),
            0,
            &mut peers,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown peer pruner"), "{err}");
        assert!(simulate(&p, &c, 5, &mut peers).is_ok());
    }

    /// Optuna's samplers and pruners in the simulated loop. Runs when `FERROTUNE_BENCH_PEERS=1`
    /// and fails when the venv is missing then; skips otherwise.
    #[test]
    fn optuna_pruners_run_the_simulated_loop() {
        if !real_peers("Optuna's pruners") {
            return;
        }
        let p = LearningCurves;
        let mut peers = Peers::new(PeerConfig::default());
        for (sampler, pruner, workers) in [
            ("optuna-random", "optuna-median", 4),
            ("optuna-tpe", "optuna-successive_halving", 1),
        ] {
            let c = peer_config(sampler, pruner, workers, 8.0);
            let a = simulate(&p, &c, 2, &mut peers).expect("runs");
            check_sim(&a, workers, 8.0, p.max_steps());
            assert!(
                a.iter().any(|r| r.state == TrialState::Pruned),
                "{}: {a:?}",
                c.label()
            );
            assert_eq!(
                a,
                simulate(&p, &c, 2, &mut peers).expect("runs"),
                "{}",
                c.label()
            );
            assert_ne!(
                a,
                simulate(&p, &c, 3, &mut peers).expect("runs"),
                "{}",
                c.label()
            );
        }
    }
}
