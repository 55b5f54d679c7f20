//! Pause-and-resume schedulers on simulated workers: the problems of [`crate::trainable`]
//! optimized by the real ferrotune [`Study`] with a [`SchedulerSpec`] (synchronous successive
//! halving, Hyperband, ASHA with promotion, BOHB, PBT, PB2) or without one (random search,
//! ASHA's stopping form as a pruner), by `W` workers on a simulated clock, without threads
//! and without sleeping.
//!
//! # The loop
//! A discrete-event loop like [`crate::simulate`]'s (after Syne Tune's simulator backend,
//! Salinas et al., AutoML-Conf 2022). A free worker asks [`Study::try_ask`]:
//!
//! - a trial — new, a paused one resumed from its checkpoint, or a PBT child continuing
//!   another trial's checkpoint with explored parameters — which it opens with
//!   [`Trainable::open`] (the checkpoint's bytes read back from the real checkpoint file) and
//!   runs from [`Trial::first_step`], each step taking [`Trainable::cost`] simulated seconds;
//! - `None`: nothing to run now (a synchronous rung is still running). The worker is **idle**
//!   until the next event that may change the schedule (a worker freed, a checkpoint saved),
//!   when every idle worker asks again, in worker order;
//! - `Err(Stopped)`: the scheduler has run everything it planned (PBT's population is
//!   complete); no worker asks again.
//!
//! When a step ends, its value goes through [`Trial::report_scheduled`]; a checkpoint the
//! scheduler asks for is the run's [`TrainingRun::save`] written with
//! [`CheckpointWriter::write_bytes`](ferrotune::schedule::CheckpointWriter::write_bytes)
//! into a temporary checkpoint directory removed after the run. `Ok` trains on (at the last
//! step the trial completes: [`Study::tell`]); `Pruned` ends it ([`Study::tell_pruned`]; a
//! PBT member that exploits ends so, its child waits for a worker); `Paused` parks it
//! ([`Study::tell_paused`]). Without a scheduler the same call is report + pruner, and the
//! last step is reported and told without asking the pruner, as in [`crate::simulate`].
//! Events are ordered by (simulated time, worker), so a run is a function of its seed.
//!
//! # Budget
//! A run stops starting steps when `budget_fe · max_steps` steps have started (full-fidelity
//! equivalents, as in [`crate::simulate`]); a trial whose next step finds the budget spent is
//! told Fail ("budget spent"). Random search without a pruner also starts at most
//! `⌊budget_fe⌋` trials, so its budget buys that many whole runs, never a crowd of partial
//! ones (with more workers than runs, the extra workers idle). PBT and PB2 run until the
//! scheduler finishes (`budget_fe = None`); what they consumed is recorded.
//!
//! # What is recorded
//! One [`SchedRun`] per run: the **idle fraction** — the share of worker time spent waiting
//! for work between 0 and the moment the last step started (`t_cut`, when the budget was
//! spent or the schedule ran out), so the final drain, where workers idle because nothing is
//! left to start, is excluded; the budget consumed in full-fidelity equivalents; the best
//! value at full fidelity; for PBT and PB2 the lineage of the best trial; and one [`Record`]
//! per *segment* — a worker's stint on a trial, from when it got it to when it paused,
//! stopped or finished it — in the order they ended, labelled `{sampler}+{schedule}@{W}`, so
//! [`crate::simulate::plots`] draws the best value at full fidelity against simulated time.

use crate::harness::{
    append_lines, for_each_line_of, noise_seed, open_append, HarnessError, Record, RECORD_VERSION,
};
use crate::simulate::{self, label, median_time_to, split_label, SeedRuns};
use crate::stats::{median, quartiles};
use crate::svg::Plot;
use crate::trainable::{Trainable, TrainingRun};
use ferrotune::pruner::Resource;
use ferrotune::schedule::{Pb2Config, PbtConfig, Rounding, SchedulerSpec};
use ferrotune::study::PARENT_ATTR;
use ferrotune::{ParamValue, PrunerSpec, SamplerSpec, Study, Trial, TrialError, TrialState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The reduction factor of every successive-halving contender (Hyperband's default, Li et
/// al., JMLR 2017).
pub const ETA: u64 = 3;

/// The most brackets the overlapping contenders ([`Schedule::HyperbandOverlap`],
/// [`Schedule::BohbOverlap`]) run at once.
pub const OVERLAP: u64 = 4;

/// A contender: how trials are scheduled (and which sampler proposes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Random search, every trial run to the end (at most `⌊budget_fe⌋` of them).
    Random,
    /// Synchronous successive halving (Jamieson & Talwalkar 2016): brackets of `η^s_max`
    /// configurations, each rung waiting for all of its trials.
    SyncSha,
    /// Synchronous Hyperband (Li et al. 2017), random sampling.
    Hyperband,
    /// ASHA's stopping form: random search with the successive-halving pruner (Optuna's
    /// `SuccessiveHalvingPruner`; trials are stopped, never paused).
    AshaStopping,
    /// ASHA with promotion (Li et al., MLSys 2020): trials pause at rungs, free workers
    /// promote or start.
    AshaPromotion,
    /// BOHB (Falkner, Klein & Hutter, ICML 2018): Hyperband's brackets with BOHB's model.
    Bohb,
    /// Population Based Training (Jaderberg et al. 2017), Ray Tune's defaults.
    Pbt,
    /// PB2 (Parker-Holder et al., NeurIPS 2020).
    Pb2,
    /// Synchronous Hyperband with up to [`OVERLAP`] brackets at once: a free worker that
    /// every running bracket would leave waiting opens the next bracket (as HpBandSter
    /// does), random sampling.
    HyperbandOverlap,
    /// BOHB with up to [`OVERLAP`] brackets at once.
    BohbOverlap,
}

impl Schedule {
    /// Every contender, in report order.
    pub const ALL: [Schedule; 10] = [
        Schedule::Random,
        Schedule::SyncSha,
        Schedule::Hyperband,
        Schedule::AshaStopping,
        Schedule::AshaPromotion,
        Schedule::Bohb,
        Schedule::Pbt,
        Schedule::Pb2,
        Schedule::HyperbandOverlap,
        Schedule::BohbOverlap,
    ];

    /// The command line's name.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Random => "random",
            Schedule::SyncSha => "sync_sha",
            Schedule::Hyperband => "hyperband",
            Schedule::AshaStopping => "asha_stopping",
            Schedule::AshaPromotion => "asha_promotion",
            Schedule::Bohb => "bohb",
            Schedule::Pbt => "pbt",
            Schedule::Pb2 => "pb2",
            Schedule::HyperbandOverlap => "hyperband_overlap",
            Schedule::BohbOverlap => "bohb_overlap",
        }
    }

    /// The contender of a command-line name.
    ///
    /// # Errors
    /// [`HarnessError::UnknownSampler`] naming the known ones.
    pub fn parse(text: &str) -> Result<Schedule, HarnessError> {
        let text = text.trim();
        Schedule::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| HarnessError::UnknownSampler {
                name: text.to_owned(),
                reason: format!(
                    "the schedules are {}",
                    Schedule::ALL.map(Schedule::name).join(", ")
                ),
            })
    }

    /// `(sampler, schedule)`: the two halves of the records' label
    /// (`random+asha_promotion`, `bohb+hyperband`, `bohb+hyperband_overlap`, `random+nop`).
    pub fn label_parts(self) -> (&'static str, &'static str) {
        match self {
            Schedule::Random => ("random", "nop"),
            Schedule::Bohb => ("bohb", "hyperband"),
            Schedule::BohbOverlap => ("bohb", "hyperband_overlap"),
            other => ("random", other.name()),
        }
    }

    /// The label of a run with `workers` workers (`random+sync_sha@16`).
    pub fn label(self, workers: u32) -> String {
        let (sampler, schedule) = self.label_parts();
        label(sampler, schedule, workers)
    }

    /// The contender of a label's two halves.
    pub fn from_label_parts(sampler: &str, schedule: &str) -> Option<Schedule> {
        Schedule::ALL
            .into_iter()
            .find(|s| s.label_parts() == (sampler, schedule))
    }

    /// Whether this is PBT or PB2.
    pub fn is_population(self) -> bool {
        matches!(self, Schedule::Pbt | Schedule::Pb2)
    }

    /// The most brackets a synchronous contender runs at once: [`OVERLAP`] for the
    /// overlapping ones, else 1.
    pub fn max_concurrent_brackets(self) -> u64 {
        match self {
            Schedule::HyperbandOverlap | Schedule::BohbOverlap => OVERLAP,
            _ => 1,
        }
    }

    /// The sampler, pruner and scheduler of this contender on `problem`; an error for a
    /// population contender on a problem without [`Trainable::population`]. The
    /// successive-halving contenders share η = [`ETA`], the first rung
    /// [`Trainable::min_resource`] and the problem's last step.
    ///
    /// # Errors
    /// [`HarnessError::Schedule`] for PBT or PB2 on a problem without training state.
    pub fn specs(
        self,
        problem: &dyn Trainable,
    ) -> Result<(Option<SamplerSpec>, PrunerSpec, SchedulerSpec), HarnessError> {
        let r_max = problem.max_steps();
        let r_min = problem.min_resource().min(r_max);
        // The largest s with r_min·η^s ≤ r_max: the most aggressive bracket's size is η^s.
        let mut s_max = 0;
        while r_min.saturating_mul(ETA.pow(s_max + 1)) <= r_max && s_max < 10 {
            s_max += 1;
        }
        let random = Some(SamplerSpec::Random);
        let population = || {
            problem.population().ok_or_else(|| {
                HarnessError::Schedule(format!(
                    "{} has no training state whose hyperparameters a child may change; \
                     PBT and PB2 run on {}",
                    problem.name(),
                    crate::trainable::TRAINABLE_PROBLEMS.join(" and ")
                ))
            })
        };
        Ok(match self {
            Schedule::Random => (random, PrunerSpec::Nop, SchedulerSpec::None),
            Schedule::AshaStopping => (
                random,
                PrunerSpec::SuccessiveHalving {
                    min_resource: Resource::Steps(r_min),
                    reduction_factor: ETA,
                    min_early_stopping_rate: 0,
                    bootstrap_count: 0,
                },
                SchedulerSpec::None,
            ),
            Schedule::SyncSha => (
                random,
                PrunerSpec::Nop,
                SchedulerSpec::SuccessiveHalving {
                    n_configs: ETA.pow(s_max),
                    min_resource: r_min,
                    max_resource: r_max,
                    eta: ETA,
                    max_concurrent_brackets: 1,
                },
            ),
            Schedule::Hyperband | Schedule::HyperbandOverlap => (
                random,
                PrunerSpec::Nop,
                SchedulerSpec::Hyperband {
                    min_resource: r_min,
                    max_resource: r_max,
                    eta: ETA,
                    rounding: Rounding::Ceil,
                    max_concurrent_brackets: self.max_concurrent_brackets(),
                },
            ),
            Schedule::AshaPromotion => (
                random,
                PrunerSpec::Nop,
                SchedulerSpec::Asha {
                    min_resource: r_min,
                    max_resource: r_max,
                    eta: ETA,
                },
            ),
            Schedule::Bohb | Schedule::BohbOverlap => (
                None,
                PrunerSpec::Nop,
                SchedulerSpec::Bohb {
                    min_resource: r_min,
                    max_resource: r_max,
                    eta: ETA,
                    max_concurrent_brackets: self.max_concurrent_brackets(),
                },
            ),
            Schedule::Pbt => {
                let p = population()?;
                (
                    random,
                    PrunerSpec::Nop,
                    SchedulerSpec::Pbt {
                        population_size: p.size,
                        interval: p.interval,
                        max_step: r_max,
                        config: PbtConfig::default(),
                    },
                )
            }
            Schedule::Pb2 => {
                let p = population()?;
                (
                    random,
                    PrunerSpec::Nop,
                    SchedulerSpec::Pb2 {
                        population_size: p.size,
                        interval: p.interval,
                        max_step: r_max,
                        config: PbtConfig::default(),
                        pb2: Pb2Config::default(),
                    },
                )
            }
        })
    }
}

/// One simulated run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedConfig {
    /// The contender.
    pub schedule: Schedule,
    /// Simulated workers (at least 1).
    pub workers: u32,
    /// The budget in full-fidelity equivalents; `None`: until the scheduler finishes (PBT,
    /// PB2). Random search also starts at most `⌊budget_fe⌋` trials.
    pub budget_fe: Option<f64>,
}

impl SchedConfig {
    /// The records' label: [`Schedule::label`].
    pub fn label(&self) -> String {
        self.schedule.label(self.workers)
    }
}

/// One link of a lineage: a trial, the trial whose checkpoint it continued, and its
/// parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageLink {
    /// The trial's number.
    pub trial: u64,
    /// The number of the trial whose checkpoint it continued ([`PARENT_ATTR`]), `None` for a
    /// first member.
    pub parent: Option<u64>,
    /// The step of that checkpoint.
    pub resumed_from: Option<u64>,
    /// The trial's parameters.
    pub params: BTreeMap<String, ParamValue>,
}

/// The version of [`SchedRun`] lines.
pub const SCHED_RUN_VERSION: u32 = 1;

/// One simulated run of [`run_scheduled`]: one line of the results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedRun {
    /// [`SCHED_RUN_VERSION`] of the writer.
    pub version: u32,
    /// The problem's name.
    pub problem: String,
    /// The contender.
    pub schedule: Schedule,
    /// `{sampler}+{schedule}@{workers}`.
    pub label: String,
    /// Simulated workers.
    pub workers: u32,
    /// The run's seed.
    pub seed: u64,
    /// The budget given, in full-fidelity equivalents (`None`: until the scheduler
    /// finished).
    pub budget_fe: Option<f64>,
    /// Steps started ÷ the problem's last step.
    pub consumed_fe: f64,
    /// Simulated time at which the last step started.
    pub t_cut: f64,
    /// Simulated time at which the last segment ended.
    pub makespan: f64,
    /// Worker time spent idle before `t_cut` ÷ (`workers · t_cut`).
    pub idle_fraction: f64,
    /// The most trials that ran at once.
    pub max_concurrent: u32,
    /// Trials in the study at the end (a resumed trial counts once; PBT children count).
    pub trials: u64,
    /// The best value at full fidelity.
    pub final_best: Option<f64>,
    /// The best trial's lineage, from it to its first member (PBT and PB2 only).
    pub lineage: Vec<LineageLink>,
    /// Every PBT child's parent: child number → the number of the trial whose checkpoint it
    /// continued (empty without a population scheduler).
    #[serde(default)]
    pub parents: BTreeMap<u64, u64>,
    /// One record per segment, in the order they ended.
    pub records: Vec<Record>,
}

/// A temporary checkpoint directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ferrotune-schedsim-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A trial a worker runs.
struct Busy<'s, 'p> {
    trial: Trial<'s>,
    run: Box<dyn TrainingRun + 'p>,
    /// The step running now (its end is the worker's next event).
    step: u64,
    /// The value of the last step that ended in this segment.
    last_value: Option<f64>,
    /// When the worker got the trial.
    start: f64,
}

/// How a segment ends.
enum End {
    Complete(f64),
    Pruned,
    Paused,
    Failed(&'static str),
}

/// The loop's state.
struct Sim<'s, 'p> {
    study: &'s Study,
    problem: &'p dyn Trainable,
    seed: u64,
    label: String,
    max_steps: u64,
    budget_steps: u64,
    /// Random search's cap on new trials.
    max_new: Option<u64>,
    live: Vec<Option<Busy<'s, 'p>>>,
    next_event: Vec<Option<f64>>,
    /// Since when each idle worker has waited.
    idle_since: Vec<Option<f64>>,
    /// Closed idle intervals.
    idle: Vec<(f64, f64)>,
    steps: u64,
    new_trials: u64,
    finished: bool,
    last_step_start: f64,
    best_max: Option<(f64, u64)>,
    best_any: Option<f64>,
    max_concurrent: u32,
    records: Vec<Record>,
}

impl<'s, 'p> Sim<'s, 'p> {
    /// Whether no worker may ask for work any more.
    fn closed(&self) -> bool {
        self.finished || self.steps >= self.budget_steps
    }

    fn go_idle(&mut self, w: usize, now: f64) {
        if self.idle_since[w].is_none() {
            self.idle_since[w] = Some(now);
        }
    }

    /// Starts the step `busy.step` on worker `w` at `now`.
    fn start_step(&mut self, w: usize, now: f64, busy: Busy<'s, 'p>) {
        self.steps += 1;
        self.last_step_start = now;
        let cost = self
            .problem
            .cost(&busy.trial.frozen().params, busy.step)
            .max(0.0);
        self.next_event[w] = Some(now + cost);
        self.live[w] = Some(busy);
        let busy_now = self.live.iter().filter(|b| b.is_some()).count() as u32;
        self.max_concurrent = self.max_concurrent.max(busy_now);
    }

    /// Worker `w`, free at `now`, asks for work.
    fn acquire(&mut self, w: usize, now: f64) -> Result<(), HarnessError> {
        if self.closed()
            || (!self.study.has_scheduler() && self.max_new.is_some_and(|m| self.new_trials >= m))
        {
            self.go_idle(w, now);
            return Ok(());
        }
        let mut trial = match self.study.try_ask() {
            Ok(Some(trial)) => trial,
            Ok(None) => {
                self.go_idle(w, now);
                return Ok(());
            }
            Err(ferrotune::Error::Stopped(_)) => {
                self.finished = true;
                self.go_idle(w, now);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.problem.suggest(&mut trial)?;
        let checkpoint = match trial.resume_from() {
            Some(c) => Some((c.step(), c.read_bytes()?)),
            None => None,
        };
        if checkpoint.is_none() {
            self.new_trials += 1;
        }
        let first = trial.first_step();
        if first > self.max_steps {
            return Err(HarnessError::Schedule(format!(
                "trial #{} of {} resumes at step {first}, past the last step {}",
                trial.number(),
                self.problem.name(),
                self.max_steps
            )));
        }
        let run = self.problem.open(
            &trial.frozen().params,
            noise_seed(self.seed, trial.number()),
            checkpoint.as_ref().map(|(s, b)| (*s, b.as_slice())),
        )?;
        if run.steps() + 1 != first {
            return Err(HarnessError::Schedule(format!(
                "trial #{} resumes at step {first} from a checkpoint holding {} steps",
                trial.number(),
                run.steps()
            )));
        }
        if let Some(since) = self.idle_since[w].take() {
            self.idle.push((since, now));
        }
        let busy = Busy {
            trial,
            run,
            step: first,
            last_value: None,
            start: now,
        };
        self.start_step(w, now, busy);
        Ok(())
    }

    /// The step of worker `w` ended at `now`.
    fn on_event(&mut self, w: usize, now: f64) -> Result<(), HarnessError> {
        let Some(mut busy) = self.live[w].take() else {
            return Ok(());
        };
        let value = busy.run.step()?;
        busy.last_value = Some(value);
        if self.best_any.is_none_or(|b| value < b) {
            self.best_any = Some(value);
        }
        let step = busy.step;
        let last = step >= self.max_steps;
        let mut saved = false;
        let end = if last && !self.study.has_scheduler() {
            busy.trial.report(step, value)?;
            Some(End::Complete(value))
        } else {
            let Busy { trial, run, .. } = &mut busy;
            let answer = trial.report_scheduled(step, value, |writer| {
                saved = true;
                writer.write_bytes(&run.save())
            });
            match answer {
                Ok(()) if last => Some(End::Complete(value)),
                Ok(()) if self.steps >= self.budget_steps => Some(End::Failed("budget spent")),
                Ok(()) => None,
                Err(TrialError::Pruned) => Some(End::Pruned),
                Err(TrialError::Paused) => Some(End::Paused),
                Err(TrialError::Failed(e)) => {
                    return Err(HarnessError::Schedule(format!(
                        "trial #{} of {} failed at step {step}: {e}",
                        busy.trial.number(),
                        self.problem.name()
                    )))
                }
            }
        };
        let Some(end) = end else {
            busy.step += 1;
            self.start_step(w, now, busy);
            if saved {
                self.ask_idle(now)?;
            }
            return Ok(());
        };
        if let End::Complete(v) = end {
            if self.best_max.is_none_or(|(b, _)| v < b) {
                self.best_max = Some((v, busy.trial.number()));
            }
        }
        let number = busy.trial.number();
        let reached = if busy.last_value.is_some() {
            busy.step
        } else {
            busy.step - 1
        };
        let state = match end {
            End::Complete(v) => self.study.tell(busy.trial, v)?.state,
            End::Pruned => self.study.tell_pruned(busy.trial)?.state,
            End::Failed(reason) => self.study.tell_failed(busy.trial, reason)?.state,
            End::Paused => {
                self.study.tell_paused(busy.trial)?;
                TrialState::Paused
            }
        };
        self.records.push(Record {
            version: RECORD_VERSION,
            problem: self.problem.name(),
            sampler: self.label.clone(),
            seed: self.seed,
            trial: number,
            state,
            value: busy.last_value,
            best_so_far: self.best_max.map(|(b, _)| b),
            incumbent_expected: None,
            overhead_ms: 0.0,
            step: Some(reached),
            fidelity: Some(reached as f64 / self.max_steps as f64),
            consumed_budget: Some(self.steps as f64 / self.max_steps as f64),
            sim_start: Some(busy.start),
            sim_end: Some(now),
            worker: u32::try_from(w).ok(),
            best_any_fidelity: self.best_any,
        });
        self.acquire(w, now)?;
        self.ask_idle(now)
    }

    /// Every idle worker asks again, in worker order.
    fn ask_idle(&mut self, now: f64) -> Result<(), HarnessError> {
        for w in 0..self.live.len() {
            if self.closed() {
                break;
            }
            if self.live[w].is_none() && self.idle_since[w].is_some() {
                self.acquire(w, now)?;
            }
        }
        Ok(())
    }
}

/// Runs `problem` with `config` and `seed` on the simulated clock (see the [module
/// documentation](self)).
///
/// # Errors
/// When the study cannot be built or fails, a checkpoint does not fit, or the scheduler
/// leaves every worker waiting with nothing running.
pub fn run_scheduled(
    problem: &dyn Trainable,
    config: &SchedConfig,
    seed: u64,
) -> Result<SchedRun, HarnessError> {
    let workers = config.workers.max(1) as usize;
    let max_steps = problem.max_steps().max(1);
    let label = config.label();
    let (sampler, pruner, scheduler) = config.schedule.specs(problem)?;
    let dir = TempDir::new()?;
    let mut builder = Study::builder()
        .name(format!("{}-{label}-{seed}", problem.name()))
        .seed(seed)
        .pruner(pruner);
    if let Some(sampler) = sampler {
        builder = builder.sampler(sampler);
    }
    if !scheduler.is_none() {
        builder = builder
            .scheduler(scheduler)
            .checkpoint_dir(&dir.0)
            .keep_checkpoints(1);
    }
    let study = builder.build()?;
    let budget_steps = match config.budget_fe {
        Some(b) => (b.max(0.0) * max_steps as f64).floor() as u64,
        None => u64::MAX,
    };
    let mut sim = Sim {
        study: &study,
        problem,
        seed,
        label: label.clone(),
        max_steps,
        budget_steps,
        max_new: (config.schedule == Schedule::Random)
            .then(|| config.budget_fe.map(|b| b.max(0.0).floor() as u64))
            .flatten(),
        live: (0..workers).map(|_| None).collect(),
        next_event: vec![None; workers],
        idle_since: vec![None; workers],
        idle: Vec::new(),
        steps: 0,
        new_trials: 0,
        finished: false,
        last_step_start: 0.0,
        best_max: None,
        best_any: None,
        max_concurrent: 0,
        records: Vec::new(),
    };
    for w in 0..workers {
        sim.acquire(w, 0.0)?;
    }
    loop {
        let next = sim
            .next_event
            .iter()
            .enumerate()
            .filter_map(|(w, t)| t.map(|t| (w, t)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((w, now)) = next else {
            break;
        };
        sim.next_event[w] = None;
        sim.on_event(w, now)?;
    }
    if !sim.closed() && sim.max_new.is_none() {
        return Err(HarnessError::Schedule(format!(
            "{} on {}: every worker waits and nothing runs, yet the scheduler has not \
             finished and the budget is not spent",
            label,
            problem.name()
        )));
    }
    let t_cut = sim.last_step_start;
    let open = sim
        .idle_since
        .iter()
        .flatten()
        .map(|&since| (since, f64::INFINITY));
    let idle_time: f64 = sim
        .idle
        .iter()
        .copied()
        .chain(open)
        .map(|(a, b)| (b.min(t_cut) - a.min(t_cut)).max(0.0))
        .sum();
    let idle_fraction = if t_cut > 0.0 {
        idle_time / (workers as f64 * t_cut)
    } else {
        0.0
    };
    let makespan = sim
        .records
        .iter()
        .filter_map(|r| r.sim_end)
        .fold(0.0, f64::max);
    let lineage = match (config.schedule.is_population(), sim.best_max) {
        (true, Some((_, best))) => study
            .lineage(best)?
            .into_iter()
            .map(|(t, from)| LineageLink {
                trial: t.number,
                parent: t
                    .system_attrs
                    .get(PARENT_ATTR)
                    .and_then(serde_json::Value::as_u64),
                resumed_from: from,
                params: t
                    .params
                    .iter()
                    .map(|(name, value)| (name.to_owned(), value.clone()))
                    .collect(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let all = study.trials()?;
    let parents = all
        .iter()
        .filter_map(|t| {
            let parent = t.system_attrs.get(PARENT_ATTR)?.as_u64()?;
            Some((t.number, parent))
        })
        .collect();
    let trials = all.len() as u64;
    Ok(SchedRun {
        version: SCHED_RUN_VERSION,
        problem: problem.name(),
        schedule: config.schedule,
        label,
        workers: config.workers,
        seed,
        budget_fe: config.budget_fe,
        consumed_fe: sim.steps as f64 / max_steps as f64,
        t_cut,
        makespan,
        idle_fraction,
        max_concurrent: sim.max_concurrent,
        trials,
        final_best: sim.best_max.map(|(b, _)| b),
        lineage,
        parents,
        records: sim.records,
    })
}

/// What [`run_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchedProgress {
    /// Runs executed now.
    pub ran: usize,
    /// Runs found in the file and skipped.
    pub skipped: usize,
    /// (problem, contender) pairs left out: PBT and PB2 on a problem without training state.
    pub not_applicable: usize,
}

/// Runs every (problem, config, seed) not yet in `out` (one [`SchedRun`] line each,
/// appended when the run ends), skipping population contenders on problems without
/// [`Trainable::population`].
///
/// # Errors
/// As [`run_scheduled`], and when `out` cannot be read or written.
pub fn run_all(
    problems: &[Box<dyn Trainable>],
    configs: &[SchedConfig],
    seeds: &[u64],
    out: &Path,
) -> Result<SchedProgress, HarnessError> {
    let mut done = HashSet::new();
    for_each_line_of(out, |r: SchedRun| {
        done.insert((r.problem, r.label, r.seed));
    })?;
    let mut file = open_append(out)?;
    let mut progress = SchedProgress::default();
    for problem in problems {
        for config in configs {
            if config.schedule.is_population() && problem.population().is_none() {
                progress.not_applicable += 1;
                continue;
            }
            for &seed in seeds {
                if done.contains(&(problem.name(), config.label(), seed)) {
                    progress.skipped += 1;
                    continue;
                }
                let run = run_scheduled(problem.as_ref(), config, seed)?;
                append_lines(&mut file, std::slice::from_ref(&run))?;
                progress.ran += 1;
            }
        }
    }
    Ok(progress)
}

/// The plots of [`crate::simulate::plots`] for the runs' segments: per problem and worker
/// count, each contender's median best value at full fidelity against simulated time.
pub fn plots(runs: &[SchedRun]) -> BTreeMap<String, Plot> {
    let records: Vec<Record> = runs.iter().flat_map(|r| r.records.clone()).collect();
    simulate::plots(&records)
}

/// A value for a table; `—` when there is none.
fn cell(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "—".to_owned()
    }
}

/// A share as a percentage.
fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", 100.0 * v)
    } else {
        "—".to_owned()
    }
}

/// The runs of one problem: contender → workers → seed → run.
type ByContender<'r> = BTreeMap<Schedule, BTreeMap<u32, BTreeMap<u64, &'r SchedRun>>>;

/// The runs grouped by problem, then contender, workers and seed.
fn grouped(runs: &[SchedRun]) -> BTreeMap<&str, ByContender<'_>> {
    let mut out: BTreeMap<&str, ByContender> = BTreeMap::new();
    for r in runs {
        out.entry(r.problem.as_str())
            .or_default()
            .entry(r.schedule)
            .or_default()
            .entry(r.workers)
            .or_default()
            .insert(r.seed, r);
    }
    out
}

/// The segments of each seed's run, for [`median_time_to`].
fn seed_runs<'r>(by_seed: &BTreeMap<u64, &'r SchedRun>) -> SeedRuns<'r> {
    by_seed
        .iter()
        .map(|(&seed, run)| (seed, run.records.iter().collect()))
        .collect()
}

/// The final best values of each seed (`+∞` without one).
fn finals(by_seed: &BTreeMap<u64, &SchedRun>) -> Vec<f64> {
    by_seed
        .values()
        .map(|r| r.final_best.unwrap_or(f64::INFINITY))
        .collect()
}

/// The best full-fidelity value among the first `k` trials (by number) that random search
/// `run` completed: random search's best fixed configuration with the compute of `k` whole
/// runs. `None` when the run has fewer than `k` complete trials.
pub fn best_of_first(run: &SchedRun, k: u64) -> Option<f64> {
    let mut complete: Vec<(u64, f64)> = run
        .records
        .iter()
        .filter(|r| r.state == TrialState::Complete)
        .filter_map(|r| Some((r.trial, r.value?)))
        .collect();
    complete.sort_by_key(|&(n, _)| n);
    if (complete.len() as u64) < k {
        return None;
    }
    complete
        .iter()
        .take(k as usize)
        .map(|&(_, v)| v)
        .reduce(f64::min)
}

/// The markdown report of scheduled runs under the heading `title`, per problem: the idle
/// fraction per contender and
/// worker count, the final best value, the budget consumed; BOHB against Hyperband and
/// random search as a ratio of the simulated times at which their median curves reach the
/// same value; PBT and PB2 against the best fixed configuration random search found with the
/// same compute.
pub fn sched_markdown(runs: &[SchedRun], title: &str) -> String {
    let mut out = String::new();
    let groups = grouped(runs);
    if groups.is_empty() {
        return out;
    }
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "Medians over seeds. Idle: worker time spent waiting for work before the last step \
         started, as a share of all worker time then (the final drain excluded). Values are \
         minimized; the final value is the best one at full fidelity.\n"
    );
    for (problem, by_contender) in &groups {
        let workers: BTreeSet<u32> = by_contender
            .values()
            .flat_map(|by_w| by_w.keys().copied())
            .collect();
        let seeds = by_contender
            .values()
            .flat_map(|by_w| by_w.values().map(BTreeMap::len))
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "## {problem} ({seeds} seeds)\n");
        let header = |out: &mut String, first: &str| {
            let _ = write!(out, "| {first} |");
            for w in &workers {
                let _ = write!(out, " W = {w} |");
            }
            let _ = writeln!(out, "\n|---|{}", "---|".repeat(workers.len()));
        };
        type Column = fn(&BTreeMap<u64, &SchedRun>) -> String;
        let tables: [(&str, Column); 3] = [
            ("idle fraction, median (max)", |by_seed| {
                let idle: Vec<f64> = by_seed.values().map(|r| r.idle_fraction).collect();
                let max = idle.iter().copied().fold(0.0, f64::max);
                format!("{} ({})", percent(median(&idle)), percent(max))
            }),
            ("final value, median [quartiles]", |by_seed| {
                let (m, lo, hi) = quartiles(finals(by_seed));
                format!("{} [{}, {}]", cell(m), cell(lo), cell(hi))
            }),
            (
                "budget consumed (full-fidelity equivalents), trials, simulated time to the \
                 last step",
                |by_seed| {
                    let fe: Vec<f64> = by_seed.values().map(|r| r.consumed_fe).collect();
                    let trials: Vec<f64> = by_seed.values().map(|r| r.trials as f64).collect();
                    let t: Vec<f64> = by_seed.values().map(|r| r.t_cut).collect();
                    format!(
                        "{:.1} FE, {:.0} trials, {:.1} s",
                        median(&fe),
                        median(&trials),
                        median(&t)
                    )
                },
            ),
        ];
        for (title, column) in tables {
            let _ = writeln!(out, "{}:\n", capitalized(title));
            header(&mut out, "contender");
            for (schedule, by_w) in by_contender {
                let _ = write!(out, "| {} |", display_name(*schedule));
                for w in &workers {
                    let _ = write!(
                        out,
                        " {} |",
                        by_w.get(w).map_or_else(|| "".to_owned(), column)
                    );
                }
                let _ = writeln!(out);
            }
            let _ = writeln!(out);
        }
        speedup_table(&mut out, by_contender, &workers);
        population_table(&mut out, by_contender, &workers);
    }
    out
}

/// `text` with its first letter upper-case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The report's name of a contender.
pub fn display_name(schedule: Schedule) -> &'static str {
    match schedule {
        Schedule::Random => "random search",
        Schedule::SyncSha => "synchronous SHA",
        Schedule::Hyperband => "Hyperband (sync.)",
        Schedule::AshaStopping => "ASHA stopping",
        Schedule::AshaPromotion => "ASHA promotion",
        Schedule::Bohb => "BOHB",
        Schedule::Pbt => "PBT",
        Schedule::Pb2 => "PB2",
        Schedule::HyperbandOverlap => "Hyperband (sync., 4 overlapping)",
        Schedule::BohbOverlap => "BOHB (4 overlapping)",
    }
}

/// BOHB against Hyperband and against random search, and BOHB with overlapping brackets
/// against Hyperband with overlapping brackets, random search and plain BOHB: for each worker
/// count, the simulated time at which each median curve first reaches the worse of the two
/// final medians (so both reach it), and the other's time divided by BOHB's (> 1: BOHB is
/// faster).
fn speedup_table(out: &mut String, by_contender: &ByContender, workers: &BTreeSet<u32>) {
    let pairs = [
        (Schedule::Bohb, Schedule::Hyperband),
        (Schedule::Bohb, Schedule::Random),
        (Schedule::BohbOverlap, Schedule::HyperbandOverlap),
        (Schedule::BohbOverlap, Schedule::Random),
        (Schedule::BohbOverlap, Schedule::Bohb),
    ];
    let mut rows = Vec::new();
    for (ours, other) in pairs {
        let (Some(bohb), Some(theirs)) = (by_contender.get(&ours), by_contender.get(&other)) else {
            continue;
        };
        for w in workers {
            let (Some(a), Some(b)) = (bohb.get(w), theirs.get(w)) else {
                continue;
            };
            let target = median(&finals(a)).max(median(&finals(b)));
            if !target.is_finite() {
                continue;
            }
            let t_bohb = median_time_to(&seed_runs(a), target);
            let t_other = median_time_to(&seed_runs(b), target);
            let ratio = t_other / t_bohb;
            rows.push(format!(
                "| {} vs {} | {w} | {} | {:.2} | {:.2} | {} |",
                display_name(ours),
                display_name(other),
                cell(target),
                t_bohb,
                t_other,
                if ratio.is_finite() {
                    format!("{ratio:.2}×")
                } else {
                    "—".to_owned()
                }
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Simulated time at which the median curve of the best value first reaches the worse \
         of the two final medians (the other's time ÷ BOHB's: above 1, BOHB is faster):\n\n\
         | pair | W | target | BOHB time | other's time | speed-up |\n|---|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out);
}

/// PBT and PB2 against random search with the same compute: per seed, the best fixed
/// configuration among the first `⌈consumed⌉` whole random-search runs (by trial number,
/// so independent of the worker count), `consumed` being what the population run consumed
/// in full-fidelity equivalents; wins, ties and losses are per seed.
fn population_table(out: &mut String, by_contender: &ByContender, workers: &BTreeSet<u32>) {
    let Some(random) = by_contender.get(&Schedule::Random) else {
        return;
    };
    let mut rows = Vec::new();
    for schedule in [Schedule::Pbt, Schedule::Pb2] {
        let Some(ours) = by_contender.get(&schedule) else {
            continue;
        };
        for w in workers {
            let (Some(pop), Some(rand)) = (ours.get(w), random.get(w)) else {
                continue;
            };
            let mut pairs = Vec::new();
            let mut short = 0;
            for (seed, run) in pop {
                let Some(r) = rand.get(seed) else { continue };
                let k = run.consumed_fe.ceil() as u64;
                match (run.final_best, best_of_first(r, k)) {
                    (Some(a), Some(b)) => pairs.push((a, b)),
                    _ => short += 1,
                }
            }
            if pairs.is_empty() {
                rows.push(format!(
                    "| {} | {w} | — | — | — | — | — | (no seed has enough whole random-search \
                     runs: give random search a budget of at least the population's)",
                    display_name(schedule)
                ));
                continue;
            }
            let a: Vec<f64> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            let fe: Vec<f64> = pop.values().map(|r| r.consumed_fe).collect();
            let wins = pairs.iter().filter(|(a, b)| a < b).count();
            let ties = pairs.iter().filter(|(a, b)| a.total_cmp(b).is_eq()).count();
            let lineage: Vec<f64> = pop.values().map(|r| r.lineage.len() as f64).collect();
            rows.push(format!(
                "| {} | {w} | {:.1} | {} | {} | {} / {} / {} | {:.0} |{}",
                display_name(schedule),
                median(&fe),
                cell(median(&a)),
                cell(median(&b)),
                wins,
                ties,
                pairs.len() - wins - ties,
                median(&lineage),
                if short > 0 {
                    format!(" ({short} seed(s) without enough random runs left out)")
                } else {
                    String::new()
                }
            ));
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "Population schedulers against random search with the same compute (per seed: the \
         best of the first ⌈consumed FE⌉ whole random-search runs; wins/ties/losses of the \
         population's final value against it, per seed):\n\n\
         | contender | W | consumed FE | final (median) | random, same compute (median) | \
         wins / ties / losses | lineage length |\n|---|---|---|---|---|---|---|"
    );
    for row in rows {
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out);
}

/// Splits a label of [`Schedule::label`] back into its contender and workers.
pub fn parse_label(text: &str) -> Option<(Schedule, u32)> {
    let (sampler, schedule, workers) = split_label(text)?;
    Some((Schedule::from_label_parts(sampler, schedule)?, workers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainable::{find_trainables, Quadratic};

    fn problem(name: &str) -> Box<dyn Trainable> {
        find_trainables(&[name.to_owned()], None)
            .expect("known")
            .pop()
            .expect("one")
    }

    fn config(schedule: Schedule, workers: u32, budget_fe: Option<f64>) -> SchedConfig {
        SchedConfig {
            schedule,
            workers,
            budget_fe,
        }
    }

    /// At most `w` segments overlap, and a worker runs one at a time.
    fn check_concurrency(run: &SchedRun, w: u32) {
        crate::simulate::assert_workers_respected(&run.records, w);
        assert!(run.max_concurrent <= w);
    }

    #[test]
    fn never_more_than_w_trials_at_once() {
        let p = problem("lc_hartmann6");
        for schedule in [
            Schedule::AshaPromotion,
            Schedule::SyncSha,
            Schedule::Hyperband,
            Schedule::HyperbandOverlap,
            Schedule::Random,
        ] {
            for w in [1, 3, 8] {
                let run =
                    run_scheduled(p.as_ref(), &config(schedule, w, Some(6.0)), 1).expect("runs");
                check_concurrency(&run, w);
                assert!(run.consumed_fe <= 6.0 + 1e-12, "{}", run.consumed_fe);
                // ASHA needs more than 6 FE to promote a trial through four rungs; so do
                // overlapping brackets with 8 workers (they start four brackets' low rungs).
                let ends = if matches!(
                    schedule,
                    Schedule::AshaPromotion | Schedule::HyperbandOverlap
                ) {
                    TrialState::Paused
                } else {
                    TrialState::Complete
                };
                assert!(run.records.iter().any(|r| r.state == ends), "{schedule:?}");
            }
        }
        let q = Quadratic;
        let run = run_scheduled(&q, &config(Schedule::Pbt, 3, None), 2).expect("runs");
        check_concurrency(&run, 3);
    }

    #[test]
    fn asha_promotion_never_idles_and_synchronous_sha_does() {
        // Step costs vary with x₀ on the learning curves, so a synchronous rung waits for
        // its slowest trial.
        let p = problem("lc_hartmann6");
        let idle = |schedule| {
            let mut total = 0.0;
            for seed in 0..2 {
                let run = run_scheduled(p.as_ref(), &config(schedule, 8, Some(10.0)), seed)
                    .expect("runs");
                assert!(run.t_cut > 0.0);
                total += run.idle_fraction / 2.0;
            }
            total
        };
        let asha = idle(Schedule::AshaPromotion);
        let sha = idle(Schedule::SyncSha);
        assert!(asha < 1e-9, "ASHA promotion idles {asha}");
        assert!(sha > 0.02, "synchronous SHA idles only {sha}");
        // Paused trials were resumed from their checkpoints.
        let run = run_scheduled(
            p.as_ref(),
            &config(Schedule::AshaPromotion, 8, Some(10.0)),
            0,
        )
        .expect("runs");
        assert!(run.records.iter().any(|r| r.state == TrialState::Paused));
        assert!(run
            .records
            .iter()
            .any(|r| r.step.is_some_and(|s| s > 1) && r.sim_start > Some(0.0)));
    }

    #[test]
    fn overlapping_brackets_idle_less_than_one_at_a_time() {
        let p = problem("lc_hartmann6");
        let idle = |schedule| {
            (0..2)
                .map(|seed| {
                    run_scheduled(p.as_ref(), &config(schedule, 8, Some(10.0)), seed)
                        .expect("runs")
                        .idle_fraction
                })
                .sum::<f64>()
                / 2.0
        };
        let one = idle(Schedule::Hyperband);
        let overlap = idle(Schedule::HyperbandOverlap);
        assert!(
            overlap < one / 2.0,
            "overlap idles {overlap}, one at a time {one}"
        );
        match Schedule::BohbOverlap.specs(p.as_ref()).expect("specs").2 {
            SchedulerSpec::Bohb {
                max_concurrent_brackets,
                ..
            } => assert_eq!(max_concurrent_brackets, OVERLAP),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Schedule::BohbOverlap.label(16),
            "bohb+hyperband_overlap@16",
            "told apart from BOHB's bohb+hyperband"
        );
    }

    #[test]
    fn same_seed_same_records() {
        let p = problem("lc_hartmann6");
        for schedule in [Schedule::AshaPromotion, Schedule::Hyperband] {
            let c = config(schedule, 4, Some(5.0));
            let a = run_scheduled(p.as_ref(), &c, 3).expect("runs");
            let b = run_scheduled(p.as_ref(), &c, 3).expect("runs");
            assert_eq!(a, b);
            assert!(!a.records.is_empty());
            assert_ne!(a, run_scheduled(p.as_ref(), &c, 4).expect("runs"));
        }
        let c = config(Schedule::Pbt, 2, None);
        assert_eq!(
            run_scheduled(&Quadratic, &c, 1).expect("runs"),
            run_scheduled(&Quadratic, &c, 1).expect("runs")
        );
    }

    #[test]
    fn pbt_on_the_quadratic_beats_its_initial_population_through_a_linked_lineage() {
        let run = run_scheduled(&Quadratic, &config(Schedule::Pbt, 4, None), 0).expect("runs");
        let p = Quadratic::POPULATION;
        assert!(!run.parents.is_empty(), "nobody exploited");
        // The lineage: from the best trial back to a first member, each link continuing
        // its parent's checkpoint.
        let lineage = &run.lineage;
        assert!(
            lineage.len() > 1,
            "no exploit in the best lineage: {lineage:?}"
        );
        for pair in lineage.windows(2) {
            assert_eq!(pair[0].parent, Some(pair[1].trial), "{lineage:?}");
            assert_eq!(run.parents.get(&pair[0].trial), Some(&pair[1].trial));
            assert!(pair[0].resumed_from.is_some());
        }
        let root = lineage.last().expect("non-empty");
        assert_eq!((root.parent, root.resumed_from), (None, None));
        // The initial population: the trials that are nobody's child. Each one's h trained
        // for the whole run without PBT: the best of them is what the population could do
        // on its own.
        let first_members: BTreeSet<u64> = run
            .records
            .iter()
            .map(|r| r.trial)
            .filter(|n| !run.parents.contains_key(n))
            .collect();
        assert_eq!(first_members.len(), p.size);
        assert!(first_members.contains(&root.trial));
        let fixed_best = first_members
            .iter()
            .map(|&n| {
                let h = random_draw(run.seed, n);
                Quadratic::value(Quadratic::train_fixed(h, Quadratic::STEPS))
            })
            .fold(f64::INFINITY, f64::min);
        let final_best = run.final_best.expect("a member completed");
        assert!(
            final_best < fixed_best,
            "PBT {final_best} vs the initial population's best fixed run {fixed_best}"
        );
    }

    /// The `h` random search draws for trial `number` of a study seeded with `seed` (each
    /// trial's draws depend only on the seed, its number and the parameter's name).
    fn random_draw(seed: u64, number: u64) -> [f64; 2] {
        let study = Study::builder()
            .sampler(SamplerSpec::Random)
            .seed(seed)
            .build()
            .expect("builds");
        let mut h = [f64::NAN; 2];
        for n in 0..=number {
            let mut t = study.ask().expect("asks");
            Trainable::suggest(&Quadratic, &mut t).expect("suggests");
            if n == number {
                h = Quadratic::hyperparameters(&t.frozen().params).expect("h");
            }
            study.tell(t, 0.0).expect("tells");
        }
        h
    }

    #[test]
    fn random_search_runs_whole_trials_and_same_compute_baseline() {
        let run =
            run_scheduled(&Quadratic, &config(Schedule::Random, 3, Some(5.0)), 0).expect("runs");
        let complete = run
            .records
            .iter()
            .filter(|r| r.state == TrialState::Complete)
            .count();
        assert_eq!(complete, 5);
        assert_eq!(run.trials, 5);
        assert!((run.consumed_fe - 5.0).abs() < 1e-12);
        let all = best_of_first(&run, 5).expect("five");
        assert_eq!(Some(all), run.final_best);
        assert!(best_of_first(&run, 1).expect("one") >= all);
        assert!(best_of_first(&run, 6).is_none());
    }

    #[test]
    fn population_contenders_need_training_state_and_labels_round_trip() {
        let p = problem("mfh6_good");
        assert!(Schedule::Pbt.specs(p.as_ref()).is_err());
        assert!(Schedule::Pb2.specs(&Quadratic).is_ok());
        for s in Schedule::ALL {
            assert_eq!(Schedule::parse(s.name()).expect("known"), s);
            assert_eq!(parse_label(&s.label(16)), Some((s, 16)));
        }
        assert!(Schedule::parse("nope").is_err());
        // The plans: mfh6 has 100 steps, first rung 3, so SHA starts 27 configurations.
        match Schedule::SyncSha.specs(p.as_ref()).expect("specs").2 {
            SchedulerSpec::SuccessiveHalving {
                n_configs,
                min_resource,
                max_resource,
                ..
            } => assert_eq!((n_configs, min_resource, max_resource), (27, 3, 100)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_all_resumes_and_the_report_renders() {
        let dir =
            std::env::temp_dir().join(format!("ferrotune-schedsim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = dir.join("sched.jsonl");
        let _ = std::fs::remove_file(&out);
        let problems =
            find_trainables(&["pbt_quadratic".into(), "branin_mf".into()], None).expect("known");
        let configs: Vec<SchedConfig> = [
            Schedule::Random,
            Schedule::Pbt,
            Schedule::Bohb,
            Schedule::Hyperband,
        ]
        .into_iter()
        .map(|s| config(s, 2, if s.is_population() { None } else { Some(16.0) }))
        .collect();
        let first = run_all(&problems, &configs, &[0, 1], &out).expect("runs");
        assert_eq!(
            first,
            SchedProgress {
                ran: 14,
                skipped: 0,
                not_applicable: 1
            }
        );
        let again = run_all(&problems, &configs, &[0, 1, 2], &out).expect("runs");
        assert_eq!((again.ran, again.skipped), (7, 14));
        let runs: Vec<SchedRun> = crate::report::read_jsonl(&out).expect("reads");
        let md = sched_markdown(&runs, "Schedulers");
        assert!(md.contains("## pbt_quadratic (3 seeds)"), "{md}");
        assert!(md.contains("Idle fraction"), "{md}");
        assert!(md.contains("BOHB vs Hyperband"), "{md}");
        assert!(md.contains("| PBT | 2 |"), "{md}");
        let plots = plots(&runs);
        assert!(plots.contains_key("branin_mf@2"), "{:?}", plots.keys());
        // No checkpoint directory is left behind.
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .expect("temp")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("ferrotune-schedsim-{}-", std::process::id()))
            })
            .count();
        // Other tests of this process may be running a study right now.
        assert!(leftovers <= 8, "{leftovers} checkpoint directories left");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
