//! `ferrotune run`: any program as a trial.
//!
//! ```text
//! ferrotune run --study NAME --space space.toml --direction minimize --metric val_loss \
//!     --trials 50 --jobs 4 -- python train.py --lr {lr} --layers {layers}
//! ```
//!
//! Each trial gets its parameters from the study's sampler, runs the command with them
//! (`{name}` in the arguments, `FERROTUNE_PARAM_<NAME>` variables, and a JSON file), reads
//! `ferrotune: …` report lines from its stdout, asks the pruner after every step, and records
//! the outcome. The pieces, one job each:
//!
//! - [`config`]: flags plus what is stored with the study → [`RunConfig`];
//! - [`template`]: `{name}` placeholders; [`environment`]: the program's variables;
//! - [`protocol`]: the report line format; [`child`]: the process, its output and its end;
//! - [`slots`]: how many trials at once, with which GPUs and cores;
//! - [`budget`]: the study-wide `--trials` cap with retries and re-queued trials;
//! - [`schedule`]: `--scheduler` and its options (pause and resume);
//! - [`trial`]: one trial from start to record; [`progress`]: what the user sees.
//!
//! With a scheduler the slots ask for work without blocking: a trial to start, a paused one to
//! resume from its checkpoint, or a PBT child; when the scheduler has nothing to run yet (a
//! synchronous rung still running elsewhere) the slot idles briefly and asks again.
//!
//! [`run`] runs the loop for a resolved [`RunConfig`], so a `ferrotune worker` ([`worker`])
//! that takes its configuration from the study alone runs exactly the same loop.

pub mod budget;
pub mod child;
pub mod config;
pub mod duration;
pub mod environment;
pub mod progress;
pub mod protocol;
pub mod schedule;
pub mod slots;
pub mod template;
mod trial;
pub mod worker;

pub use config::{LocalOptions, RunConfig, StudyOptions};

use crate::storage_url::{open, Access};
use anyhow::{bail, Context};
use budget::Standing;
use ferrotune::trial::TrialId;
use ferrotune::{FrozenTrial, RetryPolicy, Storage, Study, TrialState};
use progress::{Mode, Progress};
use serde_json::json;
use slots::Slot;
use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The options of `ferrotune run`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = HELP)]
pub struct RunArgs {
    /// The study (created when missing: then --space, --direction and the command are needed).
    #[arg(long)]
    pub study: String,
    #[command(flatten)]
    pub storage: crate::StorageArg,
    #[command(flatten)]
    pub study_options: StudyOptions,
    #[command(flatten)]
    pub local: LocalOptions,
    /// Store the study (space, command, metrics, directions, sampler, budget, …) and exit
    /// without running a trial; then start `ferrotune worker`s on any machines that share the
    /// storage. On an existing study, checks the flags and stores new run settings
    /// (`--trials`, `--retries`, …). The program is not looked for on this machine.
    #[arg(long)]
    pub create_only: bool,
}

const HELP: &str = "\
Reporting: the program prints lines on stdout
  ferrotune: step=3 val_loss=0.42      an intermediate value (the pruner is asked after it)
  ferrotune: val_loss=0.40             the final value (without one, the last step's counts)
  ferrotune: {\"step\": 3, \"val_loss\": 0.42}
Other output goes to <workdir>/trial-<n>/stdout.log and stderr.log. `ferrotune helper python`
prints a small Python module with report() and params().

The program's environment: FERROTUNE_PARAM_<NAME> per active parameter, FERROTUNE_PARAMS (a
JSON file with every parameter, null when inactive), FERROTUNE_TRIAL_NUMBER, FERROTUNE_STUDY,
FERROTUNE_TRIAL_DIR, FERROTUNE_SLOT; CUDA_VISIBLE_DEVICES with --gpus; OMP_NUM_THREADS and
friends with --cpus-per-trial.

Pause and resume (--scheduler asha|sha|hyperband|bohb|pbt|pb2): the program reports steps 1,
2, … up to the scheduler's last step (FERROTUNE_MAX_STEP). Before printing each step's line it
writes its state into FERROTUNE_CHECKPOINT_DIR (an empty directory at each start); when the
scheduler needs a checkpoint the runner copies that directory, and when the scheduler pauses
or stops the trial the runner stops the program right after the line. A paused trial resumes
later, on any worker: its program starts with FERROTUNE_RESUME_DIR (the checkpoint: read it,
do not change it) and FERROTUNE_RESUME_STEP (go on at that step + 1). A PBT child starts from
its parent's checkpoint with its own parameters. A program that ignores the resume variables
starts over: that works, but trains the same steps again. `ferrotune helper python` has
save_checkpoint(obj) and load_checkpoint().

Ctrl-C stops the running trials (SIGTERM, then SIGKILL after --kill-grace; press again to kill
at once), records them failed as interrupted and re-queues them (paused trials stay paused);
run the command again to go on. Exit status: 0 done, 1 every trial of this run failed, 2
error, 130 interrupted.";

/// `ferrotune run`.
pub fn command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    // Before anything is created, and again for a stored command. A study made for workers
    // may run a program that only exists where they run.
    if !args.create_only {
        check_program(&args.study_options.command, args.local.chdir)?;
    }
    let storage = open(&args.storage.storage, Access::ReadWrite)?;
    let (config, study) = config::resolve(
        &args.study,
        &storage,
        &args.study_options,
        &args.local,
        config::Role::Run,
    )?;
    if args.create_only {
        created(&args.storage.storage, &config, &study)?;
        return Ok(ExitCode::SUCCESS);
    }
    check_program(config.command.words(), config.chdir)?;
    let report = run(&config, &study)?;
    Ok(report.exit_code())
}

/// `run --create-only`: says where the study stands and how to start workers on it.
fn created(url: &str, config: &RunConfig, study: &Study) -> anyhow::Result<()> {
    let single = (config.directions.len() == 1).then(|| config.directions[0]);
    let standing = Standing::of(&study.trials()?, single);
    let target = config
        .trials
        .map_or_else(|| "no trial budget".to_owned(), |n| format!("{n} trials"));
    match config.mode {
        Mode::Json => println!(
            "{}",
            json!({
                "event": "created",
                "study": config.study,
                "trials": config.trials,
                "done": standing.counts.done,
                "command": config.command.to_string(),
            })
        ),
        Mode::Quiet => {}
        _ => {
            let quoted = crate::launch::shell_quote(&config.study);
            let storage = if crate::storage_url::has_password(url) {
                "(with the storage URL in FERROTUNE_STORAGE)".to_owned()
            } else {
                format!("--storage {}", crate::launch::shell_quote(url))
            };
            let mut text = format!(
                "study `{}` is stored ({} of {target} done); start workers on it with\n  \
                 ferrotune worker --study {quoted} {storage}\nor print a Kubernetes Job or a \
                 Slurm array of them with `ferrotune launch k8s|slurm --study {quoted} \
                 --workers N …`",
                config.study, standing.counts.done,
            );
            if config.trials.is_none() && !config.scheduler.is_population() {
                text.push_str(
                    "\nwithout --trials the workers run until they are stopped; add \
                     --trials N --create-only to give the study a budget",
                );
            }
            if let Some(note) = schedule_note(config, study) {
                text.push_str(&format!(
                    "\n{note}: every worker must reach that directory at the same path (a \
                     shared file system), or give --checkpoint-dir with its own mount point"
                ));
            }
            eprintln!("{text}");
        }
    }
    Ok(())
}

/// Refuses a program that cannot be found before any trial is spent on it.
pub(crate) fn check_program(words: &[String], chdir: bool) -> anyhow::Result<()> {
    let Some(program) = words.first() else {
        return Ok(());
    };
    if program.contains('{') || (chdir && !program.starts_with('/')) {
        return Ok(());
    }
    let found = if program.contains('/') {
        std::path::Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    if !found {
        bail!(
            "the program `{program}` {}; fix the command after --",
            if program.contains('/') {
                "does not exist"
            } else {
                "is not in PATH"
            }
        );
    }
    Ok(())
}

/// How hard the runner is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StopLevel {
    /// Running.
    Run,
    /// Start nothing; stop running trials with SIGTERM, SIGKILL after the grace period.
    Graceful,
    /// Kill running trials now.
    Now,
}

/// What one run of the loop did.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Trials this run finished (any state).
    pub finished: u64,
    /// Of which complete.
    pub complete: u64,
    /// Of which pruned.
    pub pruned: u64,
    /// Of which failed (interrupted ones not included).
    pub failed: u64,
    /// Trials stopped by an interruption (and re-queued).
    pub interrupted: u64,
    /// Trials the scheduler paused (each run of a trial between two pauses counts).
    pub paused: u64,
    /// Whether the run was interrupted.
    pub was_interrupted: bool,
    /// Whether `--timeout` ended the run (no trial was started after it).
    pub timed_out: bool,
    /// Wall time of the loop.
    pub wall: Duration,
    /// Time trial processes were running, summed over slots.
    pub busy: Duration,
    /// Number of slots.
    pub slots: usize,
}

impl RunReport {
    /// The share of the slots' time that a trial process was running.
    pub fn busy_share(&self) -> f64 {
        let total = self.wall.as_secs_f64() * self.slots as f64;
        if total > 0.0 {
            (self.busy.as_secs_f64() / total).min(1.0)
        } else {
            0.0
        }
    }

    /// The exit status: 130 when interrupted, 1 when every trial this run ended failed, 0
    /// otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.was_interrupted {
            ExitCode::from(130)
        } else if self.failed > 0 && self.complete == 0 && self.pruned == 0 && self.paused == 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The study instance the slots ask trials from; replaced when the cap must be re-counted.
struct Current {
    generation: u64,
    study: Study,
    cap: Option<u64>,
}

/// What the slot threads share.
pub(crate) struct Shared<'c> {
    config: &'c RunConfig,
    storage: Arc<dyn Storage>,
    current: Mutex<Current>,
    progress: Arc<Progress>,
    level: AtomicU8,
    reason: Mutex<String>,
    deadline: Option<Instant>,
    report: Mutex<RunReport>,
    fatal: Mutex<Option<anyhow::Error>>,
    host: String,
    inherited_env: Vec<String>,
    /// Why the study stopped handing out trials before the budget was used (the sampler has
    /// nothing left, say).
    ended: Mutex<Option<String>>,
    /// The thread that watches signals, woken when a slot finishes.
    watcher: std::thread::Thread,
    /// Slots whose loop has ended.
    slots_done: std::sync::atomic::AtomicUsize,
    /// Running trials this runner wrote one heartbeat for while idle (see
    /// [`Shared::adopt_orphans`]), and when it last looked.
    adopted: Mutex<(HashSet<TrialId>, Option<Instant>)>,
}

impl Shared<'_> {
    /// How hard the run is being stopped (Ctrl-C, SIGTERM, or a fatal error).
    pub(crate) fn stop_level(&self) -> StopLevel {
        match self.level.load(Ordering::SeqCst) {
            0 => StopLevel::Run,
            1 => StopLevel::Graceful,
            _ => StopLevel::Now,
        }
    }

    /// Why running trials are being stopped (`interrupted by Ctrl-C`).
    pub(crate) fn stop_reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Raises the stop level (never lowers it); the first reason is kept.
    fn escalate(&self, level: StopLevel, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_empty() {
            *r = reason.to_owned();
        }
        self.level.fetch_max(level as u8, Ordering::SeqCst);
    }

    /// Records the runner's first fatal error and stops the run (running trials are
    /// re-queued).
    fn fail(&self, e: anyhow::Error) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if fatal.is_none() {
            self.progress.error(&format!(
                "error: {e:#}\nstopping the running trials (they are re-queued)"
            ));
            *fatal = Some(e);
        }
        drop(fatal);
        self.escalate(StopLevel::Graceful, "interrupted: the runner failed");
    }

    /// Adds a trial process's running time to the slots' busy time.
    pub(crate) fn add_busy(&self, d: Duration) {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).busy += d;
    }

    /// Counts a trial this run finished.
    pub(crate) fn count(&self, t: &FrozenTrial, interrupted: bool) {
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.finished += 1;
        match t.state {
            _ if interrupted => r.interrupted += 1,
            TrialState::Complete => r.complete += 1,
            TrialState::Pruned => r.pruned += 1,
            TrialState::Paused => r.paused += 1,
            _ => r.failed += 1,
        }
    }

    /// Before a slot asks for work: `None` when the run is stopping or past its deadline;
    /// otherwise the current study instance (with its generation), after reaping the trials of
    /// dead runners.
    fn next_round(&self) -> Option<(u64, Study)> {
        if self.stop_level() != StopLevel::Run || self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return None;
        }
        let (generation, study) = self.current();
        if let Err(e) = study.fail_stale_trials() {
            tracing::warn!("reaping trials of dead runners failed: {e}");
        }
        Some((generation, study))
    }

    fn current(&self) -> (u64, Study) {
        let c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (c.generation, c.study.clone())
    }

    /// The study stopped handing out trials to the instance of `generation`: decides whether
    /// there is more to run (re-queued or retried trials waiting, or room under a re-counted
    /// cap) and, if so, replaces the instance. Returns whether to go on.
    fn after_stop(&self, generation: u64, reason: &str) -> anyhow::Result<bool> {
        let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if c.generation != generation {
            return Ok(true);
        }
        let r = self.recount(&c)?;
        if r.standing.waiting == 0 && !r.room {
            self.no_more_trials(reason, !r.at_cap);
            return Ok(false);
        }
        self.reopen(&mut c, r.new_cap)?;
        Ok(true)
    }

    /// Re-counts the study's trials against the budget after it stopped handing them out.
    fn recount(&self, c: &Current) -> anyhow::Result<Recount> {
        let trials = self.storage.trials(c.study.id(), None)?;
        let standing = Standing::of(&trials, None);
        let settings = config::RunSettings::stored(&*self.storage, &c.study)?;
        // Another run may have raised the budget meanwhile.
        let budget = settings.trials.or(self.config.trials);
        let at_cap = c.cap.is_some_and(|cap| standing.records >= cap);
        let new_cap = budget.map(|n| standing.cap(n));
        let room = at_cap && new_cap.is_some_and(|cap| cap > standing.records);
        let running = trials.iter().any(|t| t.state == TrialState::Running);
        Ok(Recount {
            standing,
            at_cap,
            new_cap,
            room,
            running,
        })
    }

    /// Logs that the run has no more trials to start; `record` keeps the reason as the
    /// run's ending (not when it merely reached its own cap).
    fn no_more_trials(&self, reason: &str, record: bool) {
        tracing::info!(study = self.config.study, "no more trials: {reason}");
        if record {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            ended.get_or_insert_with(|| reason.to_owned());
        }
    }

    /// Replaces the study instance with one capped at `cap`, a new generation.
    fn reopen(&self, c: &mut Current, cap: Option<u64>) -> anyhow::Result<()> {
        c.study = open_study(self.config, &self.storage, cap)?;
        c.cap = cap;
        c.generation += 1;
        Ok(())
    }
}

/// Where a study stands against the run's budget once it stopped handing out trials.
struct Recount {
    standing: Standing,
    /// Whether the current instance reached its record cap.
    at_cap: bool,
    /// The cap a new instance gets (the budget re-counted).
    new_cap: Option<u64>,
    /// Whether the re-counted cap leaves room for more trials.
    room: bool,
    /// Whether any trial of the study is running.
    running: bool,
}

/// What a slot does after the study stopped handing out trials (scheduled studies).
enum AfterStop {
    /// Ask again now.
    Again,
    /// Trials still run (here or elsewhere) and may pause, be promoted or finish a rung:
    /// ask again after a nap.
    Wait,
    /// Nothing left to do.
    End,
}

impl Shared<'_> {
    /// A runner killed between claiming a trial and its first heartbeat leaves a Running
    /// trial without one, which no check for stale heartbeats ever finds; a scheduled study
    /// would wait for it forever (a rung that never completes, a budget that never ends). So
    /// while a slot idles it writes one heartbeat, once, for every Running trial it has not
    /// seen before: a live trial's runner beats on anyway, and an orphan goes stale after the
    /// grace period and is reaped like any dead runner's trial (a dead trial that had a
    /// heartbeat is reaped at most one grace period later). At most once per heartbeat
    /// interval.
    fn adopt_orphans(&self, study: &Study) {
        let mut adopted = self.adopted.lock().unwrap_or_else(|e| e.into_inner());
        let (seen, last) = &mut *adopted;
        if last.is_some_and(|at| at.elapsed() < self.config.heartbeat.interval) {
            return;
        }
        *last = Some(Instant::now());
        let running = match self
            .storage
            .trials(study.id(), Some(&[TrialState::Running]))
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("listing running trials failed: {e}");
                return;
            }
        };
        for t in running {
            if seen.insert(t.id) {
                // It may have ended meanwhile: nothing to do then.
                let _ = self.storage.record_heartbeat(t.id);
            }
        }
    }

    /// A scheduled study stopped handing out trials to the instance of `generation`: the
    /// scheduler has finished, or the trial budget is used (or the sampler has nothing left).
    /// With the budget used, the slots go on while any trial of the study is running, since
    /// a running trial may pause and be promoted, or finish a synchronous rung; they end once
    /// nothing runs. A raised budget (or repeats re-counted) gives room again.
    fn after_scheduled_stop(&self, generation: u64, reason: &str) -> anyhow::Result<AfterStop> {
        let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if c.generation != generation {
            return Ok(AfterStop::Again);
        }
        if !c.study.is_stopped() {
            // try_ask's own answer: the scheduler has run every trial it planned.
            self.no_more_trials(reason, true);
            return Ok(AfterStop::End);
        }
        let r = self.recount(&c)?;
        if !r.room && !r.running {
            self.no_more_trials(reason, !r.at_cap);
            return Ok(AfterStop::End);
        }
        self.reopen(&mut c, r.new_cap)?;
        Ok(if r.room {
            AfterStop::Again
        } else {
            AfterStop::Wait
        })
    }
}

/// Opens the study for asking trials, with the record cap and the heartbeat and retry
/// settings of the run.
fn open_study(
    config: &RunConfig,
    storage: &Arc<dyn Storage>,
    cap: Option<u64>,
) -> anyhow::Result<Study> {
    // Never create the study anew (it may have been deleted meanwhile).
    storage.study_by_name(&config.study)?;
    let mut b = Study::builder()
        .storage(storage.clone())
        .name(&config.study)
        .load_if_exists(true)
        .heartbeat(config.heartbeat);
    if let Some(cap) = cap {
        b = b.max_trials(cap);
    }
    if config.retries > 0 {
        b = b.retry(RetryPolicy::any_failure(config.retries));
    }
    if let Some(dir) = &config.checkpoint_dir {
        b = b.checkpoint_dir(dir);
    }
    if let Some(keep) = config.keep_checkpoints {
        b = b.keep_checkpoints(keep);
    }
    Ok(b.build()?)
}

/// Runs trials until the study holds `config.trials` outcomes, the sampler has nothing left,
/// `--timeout` passes, or the runner is interrupted; prints the summary.
pub fn run(config: &RunConfig, study: &Study) -> anyhow::Result<RunReport> {
    let storage = study.storage().clone();
    std::fs::create_dir_all(&config.workdir)
        .with_context(|| format!("creating {}", config.workdir.display()))?;
    let single = (config.directions.len() == 1).then(|| config.directions[0]);
    let standing = Standing::of(&study.trials()?, single);
    let cap = config.trials.map(|n| standing.cap(n));
    let progress = Arc::new(Progress::new(
        config.mode,
        standing.counts.clone(),
        config.trials,
        &config.directions,
    ));
    if let Some(note) = &config.slots_note {
        progress.info(&format!(
            "running {} trial(s) at once: {note}",
            config.slots.len()
        ));
    }
    let shared = Shared {
        config,
        storage: storage.clone(),
        current: Mutex::new(Current {
            generation: 0,
            study: open_study(config, &storage, cap)?,
            cap,
        }),
        progress: progress.clone(),
        level: AtomicU8::new(0),
        reason: Mutex::new(String::new()),
        deadline: config.timeout.map(|t| Instant::now() + t),
        report: Mutex::new(RunReport {
            slots: config.slots.len(),
            ..RunReport::default()
        }),
        fatal: Mutex::new(None),
        host: hostname(),
        inherited_env: std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect(),
        ended: Mutex::new(None),
        watcher: std::thread::current(),
        slots_done: Default::default(),
        adopted: Mutex::new((HashSet::new(), None)),
    };
    intro(&shared, study, &standing);
    let signals = Signals::install()?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(config.slots.len());
        for slot in &config.slots {
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("ferrotune-slot-{}", slot.index))
                .spawn_scoped(scope, move || {
                    // Counted even if the loop panics, so the watcher never waits forever.
                    let _done = SlotDone(shared);
                    slot_loop(shared, slot);
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => shared.fail(anyhow::Error::new(e).context("starting a slot thread")),
            }
        }
        while shared.slots_done.load(Ordering::SeqCst) < handles.len() {
            std::thread::park_timeout(Duration::from_millis(50));
            signals.poll(&shared);
        }
    });
    let wall = started.elapsed();
    progress.finish();
    let mut report = shared
        .report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    report.wall = wall;
    report.was_interrupted = shared.stop_level() != StopLevel::Run;
    report.timed_out = shared.deadline.is_some_and(|d| Instant::now() >= d);
    if let Some(e) = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(e);
    }
    summary(&shared, study, &report)?;
    Ok(report)
}

/// Counts a slot's loop as ended when dropped, and wakes the watcher.
struct SlotDone<'a, 'c>(&'a Shared<'c>);

impl Drop for SlotDone<'_, '_> {
    fn drop(&mut self) {
        self.0.slots_done.fetch_add(1, Ordering::SeqCst);
        self.0.watcher.unpark();
    }
}

/// One slot: asks for a trial, runs it, again, until there is nothing more to do.
fn slot_loop(shared: &Shared<'_>, slot: &Slot) {
    if let Err(e) = pin_thread(slot) {
        shared.progress.error(&format!(
            "warning: cannot pin {slot} to its cores ({e}); its trials run on any core"
        ));
    }
    if !shared.config.scheduler.is_none() {
        return scheduled_slot_loop(shared, slot);
    }
    while let Some((generation, study)) = shared.next_round() {
        let trial = match study.ask() {
            Ok(t) => t,
            Err(ferrotune::Error::Stopped(reason)) => {
                match shared.after_stop(generation, &reason) {
                    Ok(true) => continue,
                    Ok(false) => return,
                    Err(e) => return shared.fail(e),
                }
            }
            Err(e) => return shared.fail(anyhow::Error::new(e).context("asking for a trial")),
        };
        if let Err(e) = trial::run_trial(shared, slot, &study, trial) {
            return shared.fail(e);
        }
    }
}

/// The shortest and longest nap of an idle slot of a scheduled study.
const IDLE_NAP: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(200));

/// A slot of a scheduled study: asks for work without blocking (a new trial, a paused one to
/// resume, a PBT child), idles briefly while the scheduler has nothing to run, and ends when
/// the scheduler has finished or the budget is used and nothing is left to resume.
fn scheduled_slot_loop(shared: &Shared<'_>, slot: &Slot) {
    let mut nap = IDLE_NAP.0;
    let idle = |nap: &mut Duration, study: &Study| {
        shared.adopt_orphans(study);
        std::thread::sleep(*nap);
        *nap = (*nap * 2).min(IDLE_NAP.1);
    };
    while let Some((generation, study)) = shared.next_round() {
        match study.try_ask() {
            Ok(Some(trial)) => {
                nap = IDLE_NAP.0;
                if let Err(e) = trial::run_trial(shared, slot, &study, trial) {
                    return shared.fail(e);
                }
            }
            Ok(None) => idle(&mut nap, &study),
            Err(ferrotune::Error::Stopped(reason)) => {
                match shared.after_scheduled_stop(generation, &reason) {
                    Ok(AfterStop::Again) => {}
                    Ok(AfterStop::Wait) => idle(&mut nap, &study),
                    Ok(AfterStop::End) => return,
                    Err(e) => return shared.fail(e),
                }
            }
            Err(e) => return shared.fail(anyhow::Error::new(e).context("asking for a trial")),
        };
    }
}

/// Gives the calling thread the slot's cores; the processes it starts inherit them (CPU
/// affinity is inherited across fork and exec), so no code runs in the child before `exec`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pin_thread(slot: &Slot) -> nix::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    if slot.cpus.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for &c in &slot.cpus {
        set.set(c)?;
    }
    // Pid 0 is the calling thread.
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pin_thread(slot: &Slot) -> Result<(), String> {
    if slot.cpus.is_empty() {
        Ok(())
    } else {
        Err("CPU affinity is supported on Linux only; the thread variables are still set".into())
    }
}

/// SIGINT (Ctrl-C) and SIGTERM: the first stops the running trials gracefully, the next one
/// kills them at once.
struct Signals {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, int.clone())
            .context("handling Ctrl-C")?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())
            .context("handling SIGTERM")?;
        Ok(Signals { int, term })
    }

    fn poll(&self, shared: &Shared<'_>) {
        let int = self.int.swap(false, Ordering::SeqCst);
        let term = self.term.swap(false, Ordering::SeqCst);
        if !(int || term) {
            return;
        }
        let what = if int { "Ctrl-C" } else { "SIGTERM" };
        let running = shared.progress.counts().running;
        if shared.stop_level() == StopLevel::Run {
            shared.escalate(StopLevel::Graceful, &format!("interrupted by {what}"));
            shared.progress.error(&format!(
                "{what}: stopping {running} running trial(s) (SIGTERM, SIGKILL after {}); they \
                 are recorded as interrupted and re-queued. {what} again kills them now.",
                duration::format_duration(shared.config.kill_grace)
            ));
        } else {
            shared.escalate(StopLevel::Now, &format!("interrupted by {what}"));
            shared.progress.error(&format!(
                "{what} again: killing {running} running trial(s) now"
            ));
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Where the study's checkpoints are: this run's `--checkpoint-dir`, else the stored one,
/// with the study's own subdirectory.
fn checkpoint_root(config: &RunConfig, study: &Study) -> Option<std::path::PathBuf> {
    let dir = config
        .checkpoint_dir
        .clone()
        .or_else(|| study.config().checkpoints.as_ref().map(|c| c.dir.clone()))?;
    Some(
        ferrotune::schedule::CheckpointStore::new(dir, study.name())
            .root()
            .to_owned(),
    )
}

/// `asha up to step 27; checkpoints in DIR`.
fn schedule_note(config: &RunConfig, study: &Study) -> Option<String> {
    if config.scheduler.is_none() {
        return None;
    }
    let mut note = format!("scheduler {}", config.scheduler.name());
    if let Some(max) = config.scheduler.max_step() {
        note.push_str(&format!(" up to step {max}"));
    }
    if let Some(root) = checkpoint_root(config, study) {
        note.push_str(&format!("; checkpoints in {}", root.display()));
    }
    Some(note)
}

fn intro(shared: &Shared<'_>, study: &Study, standing: &Standing) {
    let config = shared.config;
    let target = config
        .trials
        .map_or_else(|| "no trial budget".to_owned(), |n| format!("{n} trials"));
    shared.progress.info(&format!(
        "study `{}`: {} of {target} done; {} slot(s); logs in {}",
        config.study,
        standing.counts.done,
        config.slots.len(),
        config.workdir.display()
    ));
    if config
        .slots
        .iter()
        .any(|s| !s.gpus.is_empty() || !s.cpus.is_empty())
    {
        for s in &config.slots {
            shared.progress.info(&format!("  {s}"));
        }
    }
    if let Some(note) = schedule_note(config, study) {
        shared.progress.info(&note);
    }
    if let Some(n) = config.trials.filter(|_| config.scheduler.is_none()) {
        if standing.counts.done >= n && standing.waiting == 0 {
            shared.progress.info(&format!(
                "the study already has {} trials with an outcome; raise --trials to run more",
                standing.counts.done
            ));
        }
    }
}

/// Prints where the study stands and what this run did.
fn summary(shared: &Shared<'_>, study: &Study, report: &RunReport) -> anyhow::Result<()> {
    let config = shared.config;
    let trials = study.trials()?;
    let single = (config.directions.len() == 1).then(|| config.directions[0]);
    let standing = Standing::of(&trials, single);
    let c = &standing.counts;
    let best = single.and_then(|_| study.best_trial().ok());
    let rate = if report.wall.as_secs_f64() > 0.0 {
        report.finished as f64 / report.wall.as_secs_f64()
    } else {
        0.0
    };
    if shared.progress.mode() == Mode::Json {
        let best = best.as_ref().map(|b| {
            json!({
                "trial": b.number,
                "values": b.values.as_ref().map(|v| config.metrics.iter().zip(v)
                    .map(|(m, x)| (m.clone(), progress::number(*x)))
                    .collect::<serde_json::Map<_, _>>()),
                "params": b.params,
            })
        });
        let line = json!({
            "event": "summary",
            "study": config.study,
            "trials": config.trials,
            "done": c.done,
            "complete": c.complete,
            "pruned": c.pruned,
            "failed": c.failed,
            "paused": c.paused,
            "best": best,
            "run": {
                "finished": report.finished,
                "complete": report.complete,
                "pruned": report.pruned,
                "failed": report.failed,
                "paused": report.paused,
                "interrupted": report.interrupted,
                "wall_s": report.wall.as_secs_f64(),
                "trials_per_s": rate,
                "slots": report.slots,
                "busy": report.busy_share(),
            },
            "interrupted": report.was_interrupted,
            "timed_out": report.timed_out,
        });
        println!("{line}");
        return Ok(());
    }
    let mut text = format!(
        "study `{}`: {}{} trials with an outcome ({} complete, {} pruned, {} failed",
        config.study,
        c.done,
        config.trials.map_or_else(String::new, |n| format!("/{n}")),
        c.complete,
        c.pruned,
        c.failed.saturating_sub(standing.repeats),
    );
    if c.paused > 0 {
        text.push_str(&format!(", {} paused", c.paused));
    }
    if standing.replaced > 0 {
        text.push_str(&format!(
            "; {} exploited member(s) go on as PBT children",
            standing.replaced
        ));
    }
    if standing.repeats > 0 {
        text.push_str(&format!(
            "; {} attempt(s) that failed or were interrupted are repeated by later trials",
            standing.repeats
        ));
    }
    text.push(')');
    if let Some(b) = &best {
        let params = serde_json::to_string(&b.params).unwrap_or_default();
        text.push_str(&format!(
            "\nbest: trial {} with {}={} {params}",
            b.number,
            config.metrics[0],
            b.value().map_or_else(String::new, |v| v.to_string())
        ));
    }
    text.push_str(&format!(
        "\nthis run: {} trial(s) in {} ({rate:.2}/s), {} slot(s) busy {:.1}% of the time",
        report.finished,
        duration::format_duration(report.wall),
        report.slots,
        100.0 * report.busy_share()
    ));
    if report.was_interrupted {
        text.push_str(&format!(
            "\ninterrupted: {} running trial(s) were stopped and re-queued; run the same \
             command again to go on",
            report.interrupted
        ));
    } else if let Some(reason) = shared
        .ended
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        text.push_str(&format!("\nno more trials: {reason}"));
    } else if c.paused > 0 && !config.scheduler.is_none() {
        text.push_str(&format!(
            "\n{} trial(s) stay paused at a rung the scheduler did not promote them from within \
             the budget; raise --trials to let it start and promote more (their checkpoints are \
             kept)",
            c.paused
        ));
    } else if report.timed_out {
        text.push_str(&format!(
            "\n--timeout {} passed: no trial was started after it; run again to go on",
            config
                .timeout
                .map_or_else(String::new, duration::format_duration)
        ));
    }
    if !report.was_interrupted
        && report.failed > 0
        && report.complete == 0
        && report.pruned == 0
        && report.paused == 0
    {
        text.push_str(&format!(
            "\nevery trial of this run failed; see the reasons above and the logs in {}",
            config.workdir.display()
        ));
    }
    if shared.progress.mode() == Mode::Quiet && !report.was_interrupted {
        return Ok(());
    }
    shared.progress.error(&text);
    Ok(())
}
