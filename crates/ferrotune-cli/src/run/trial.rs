//! One trial from start to end: its parameters, directory, command line and environment; its
//! process, reports, pruning and time limit; and the record it leaves in the study.
//!
//! # How a trial ends
//! | what happened | state | reason |
//! |---|---|---|
//! | exit 0 with every metric reported | Complete | |
//! | the pruner said stop after a step | Pruned (value: its last intermediate value) | |
//! | exit 0 without a metric, or with NaN | Fail | which metric, what was reported instead |
//! | non-zero exit, or killed by a signal | Fail | `exit status 1` / `killed by signal 11 (SIGSEGV)` and the last stderr line |
//! | `--trial-timeout` passed | Fail | `timed out after 30m` |
//! | Ctrl-C / SIGTERM to the runner | Fail, re-queued (not a retry) | `interrupted by Ctrl-C` |
//!
//! # With a scheduler
//! The runner gives the program an empty scratch directory (`FERROTUNE_CHECKPOINT_DIR`, the
//! trial directory's `checkpoint/`), into which the program writes its state before it prints
//! each step's report line. From the moment the runner reads a step's line until the
//! scheduler has answered (and the state is copied, if it needed a checkpoint), the program's
//! process group is frozen (SIGSTOP, then SIGCONT), so the state copied is the one of that
//! step; then the runner writes the step into `FERROTUNE_ACK_FILE`. (The freeze comes from the
//! thread reading the program's output, which a busy machine may wake late; a program that
//! waits for the acknowledgement before it changes its saved state, as the Python helper
//! does, can never have a later state copied.) The answers:
//!
//! | scheduler's answer | what the runner does | state |
//! |---|---|---|
//! | continue | nothing | |
//! | checkpoint (PBT) | copies the scratch directory into the checkpoint | |
//! | pause | copies it, stops the program (SIGTERM, SIGKILL after the grace) | Paused |
//! | stop (a rung not promoted) | stops the program | Pruned |
//! | exploit (PBT) | stops the program; a child trial goes on from the winner's checkpoint | Pruned |
//! | complete (the last step) | lets the program exit | Complete |
//!
//! Steps count from 1; a resumed trial (or PBT child) goes on after its checkpoint's step, so
//! its reports of earlier steps (a program that ignored `FERROTUNE_RESUME_DIR` and started
//! over) are ignored. A program that exits (status 0) before the scheduler's last step fails,
//! and so does a step 0. Reports past the last step stop the program: the trial completes with
//! its value at the last step. A resumed trial keeps its directory: its logs go on in the same
//! files. The scratch directory of a paused or stopped trial is removed (what the scheduler
//! needs is in its checkpoint); a complete trial keeps its final state there.
//!
//! A failed trial keeps the last 50 lines of its stderr in the `ferrotune:stderr_tail` system
//! attribute and how it exited in `ferrotune:exit`; where and how it ran (host, pid, directory,
//! command line, slot) is in `ferrotune:process`. Complete and pruned trials keep every metric
//! they reported last in the `metrics` user attribute. Each trial directory holds
//! `params.json`, `stdout.log`, `stderr.log` and `ferrotune.log` (the command line, the slot
//! and the outcome).

use super::child::{describe_status, Event, Launch, Process, Stream};
use super::duration::format_duration;
use super::environment::{params_json, trial_env, ScheduleEnv, TrialIdentity};
use super::progress::{self, Finished};
use super::protocol::Report;
use super::slots::{cpu_list, Slot};
use super::template::shell_words;
use super::{budget, Shared, StopLevel};
use anyhow::Context;
use ferrotune::study::REPLACED_BY_ATTR;
use ferrotune::trial::TrialId;
use ferrotune::{FrozenTrial, ParamValue, Storage, Study, Trial, TrialError, TrialState};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often a running trial is looked at when nothing happens (its output wakes the runner
/// at once, so this bounds only the timing of time limits and heartbeats).
const POLL: Duration = Duration::from_millis(100);
/// After its exit, how long a program's output may take to reach its end.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest stderr line quoted in a failure reason.
const REASON_LINE_CHARS: usize = 200;
/// The scratch directory inside the trial directory (`FERROTUNE_CHECKPOINT_DIR`).
pub const SCRATCH_DIR: &str = "checkpoint";
/// The acknowledgement file inside the trial directory (`FERROTUNE_ACK_FILE`).
pub const ACK_FILE: &str = ".ferrotune-ack";

/// Why the runner stopped a trial's process.
#[derive(Debug, Clone)]
enum Stop {
    /// The pruner, or the scheduler (a rung not promoted, a PBT exploit), stopped it.
    Pruned {
        step: u64,
    },
    /// The scheduler paused it after saving its checkpoint.
    Paused {
        step: u64,
    },
    /// It reported a step past the scheduler's last one: it is complete.
    PastLastStep,
    /// It broke the pause-and-resume protocol, or the scheduler could not take its report.
    Broken(String),
    TimedOut(Duration),
    Interrupted,
    /// Another runner finished the trial meanwhile (this one's heartbeat was late).
    Lost(String),
}

/// How a trial ended.
#[derive(Debug)]
enum Outcome {
    Complete(Vec<f64>),
    Pruned {
        step: Option<u64>,
    },
    /// Paused by the scheduler, its checkpoint saved.
    Paused {
        step: u64,
    },
    Failed(String),
    /// Failed, then re-queued without counting as a retry.
    Interrupted(String),
    /// Finished by someone else; nothing to record.
    Lost(String),
}

/// What the runner learned about a trial along the way.
struct Info {
    dir: PathBuf,
    params: BTreeMap<String, Option<ParamValue>>,
    argv: Vec<String>,
    duration: Duration,
    started: SystemTime,
    exit: Option<String>,
    tail: Vec<String>,
    metrics: BTreeMap<String, f64>,
    /// The checkpoint this run resumed from: (trial that saved it, step).
    resumed_from: Option<(u64, u64)>,
    /// The scratch directory of a scheduled trial.
    scratch: Option<PathBuf>,
}

/// Runs one trial the study just handed out, to its recorded end. Errors are the runner's
/// own (storage, file system), not the trial's; the trial is re-queued before they return.
pub(super) fn run_trial(
    shared: &Shared<'_>,
    slot: &Slot,
    study: &Study,
    mut trial: Trial<'_>,
) -> anyhow::Result<()> {
    let number = trial.number();
    shared.progress.started();
    beat(&**study.storage(), trial.frozen().id);
    let resumed_from = trial.resume_from().map(|c| (c.id().trial, c.step()));
    if resumed_from.is_some_and(|(from, _)| from == number) {
        shared.progress.resumed();
    }
    let mut info = Info {
        dir: shared.config.workdir.join(format!("trial-{number}")),
        params: BTreeMap::new(),
        argv: Vec::new(),
        duration: Duration::ZERO,
        started: SystemTime::now(),
        exit: None,
        tail: Vec::new(),
        metrics: BTreeMap::new(),
        resumed_from,
        scratch: None,
    };
    match execute(shared, slot, &mut trial, &mut info) {
        Ok(outcome) => conclude(shared, slot, study, trial, outcome, &info),
        Err(e) => {
            let reason = format!("the runner could not run it: {e:#}");
            conclude(
                shared,
                slot,
                study,
                trial,
                Outcome::Interrupted(reason),
                &info,
            )?;
            Err(e.context(format!("trial {number}")))
        }
    }
}

/// Prepares and runs the process; `Err` only for the runner's own failures.
fn execute(
    shared: &Shared<'_>,
    slot: &Slot,
    trial: &mut Trial<'_>,
    info: &mut Info,
) -> anyhow::Result<Outcome> {
    let config = shared.config;
    info.params = match config.space.suggest(trial) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "suggesting parameters failed: {e}"
            )))
        }
    };
    if shared.stop_level() != StopLevel::Run {
        return Ok(Outcome::Interrupted(shared.stop_reason()));
    }
    info.argv = match config.command.render(&info.params) {
        Ok(a) => a,
        Err(e) => return Ok(Outcome::Failed(e.to_string())),
    };
    // A trial resumed from its own checkpoint goes on in its directory.
    let own_resume = info
        .resumed_from
        .is_some_and(|(from, _)| from == trial.number());
    if own_resume {
        std::fs::create_dir_all(&info.dir)
            .with_context(|| format!("creating {}", info.dir.display()))?;
    } else {
        prepare_dir(&info.dir)?;
    }
    let params_file = info.dir.join("params.json");
    std::fs::write(&params_file, params_json(&info.params))
        .with_context(|| format!("writing {}", params_file.display()))?;
    let scheduled = !config.scheduler.is_none();
    let ack = info.dir.join(ACK_FILE);
    if scheduled {
        let scratch = info.dir.join(SCRATCH_DIR);
        empty_dir(&scratch)?;
        info.scratch = Some(scratch);
        match std::fs::remove_file(&ack) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", ack.display())),
        }
    }
    let resume_dir = trial.resume_from().map(|c| c.dir().to_owned());
    let env = trial_env(
        &TrialIdentity {
            study: &config.study,
            number: trial.number(),
            dir: &info.dir,
            params_file: &params_file,
            slot,
            schedule: info.scratch.as_deref().map(|scratch| ScheduleEnv {
                checkpoint_dir: scratch,
                ack_file: &ack,
                max_step: config.scheduler.max_step(),
                resume: resume_dir
                    .as_deref()
                    .zip(info.resumed_from.map(|(_, step)| step)),
            }),
        },
        &info.params,
        &config.env_names,
        shared.inherited_env.iter().map(String::as_str),
    );
    let tee = config.tee.then(|| {
        let progress = shared.progress.clone();
        let number = trial.number();
        Arc::new(move |_: Stream, line: &str| progress.tee(number, line)) as super::child::Tee
    });
    info.started = SystemTime::now();
    let launch = Launch {
        argv: info.argv.clone(),
        env: env.set,
        env_remove: env.remove,
        cwd: config.chdir.then(|| info.dir.clone()),
        stdout_log: info.dir.join("stdout.log"),
        stderr_log: info.dir.join("stderr.log"),
        append: own_resume,
        freeze_on_step: scheduled,
        tee,
    };
    let mut process = match Process::spawn(launch) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Outcome::Failed(format!(
                "cannot start `{}`: {e}",
                info.argv.first().map_or("", String::as_str)
            )))
        }
    };
    let record = json!({
        "host": shared.host,
        "pid": process.pid(),
        "dir": info.dir.display().to_string(),
        "argv": info.argv,
        "slot": slot.index,
        "gpus": slot.gpus,
        "cpus": slot.cpus,
    });
    let storage = trial.study().storage().clone();
    if let Err(e) = storage.set_trial_system_attr(trial.frozen().id, "ferrotune:process", &record) {
        tracing::warn!(trial = trial.number(), "cannot record the process: {e}");
    }
    let schedule = info.scratch.clone().map(|scratch| {
        let trained = info.resumed_from.map_or(0, |(_, step)| step);
        Scheduled {
            last_step: config.scheduler.max_step().unwrap_or(u64::MAX),
            trained,
            scratch,
            ack: ack.clone(),
            last: trained,
            reached_last: false,
            heartbeat: config.heartbeat.interval,
            ignored: 0,
            warned_order: false,
            warned_empty: false,
        }
    });
    let outcome = watch(shared, trial, &mut process, info, schedule);
    shared.add_busy(info.duration);
    outcome
}

/// Empties (or creates) a directory.
fn empty_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("emptying {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Watches the process until it exits: records reports, asks the pruner or the scheduler,
/// enforces the time limit and Ctrl-C, keeps the heartbeat.
fn watch(
    shared: &Shared<'_>,
    trial: &mut Trial<'_>,
    process: &mut Process,
    info: &mut Info,
    schedule: Option<Scheduled>,
) -> anyhow::Result<Outcome> {
    let config = shared.config;
    let storage = trial.study().storage().clone();
    let id = trial.frozen().id;
    let grace = config.kill_grace;
    let scheduled = schedule.is_some();
    let mut reports = Reports {
        schedule,
        ..Reports::default()
    };
    let mut stop: Option<(Stop, Instant)> = None;
    let mut killed = false;
    let mut last_beat = Instant::now();
    let mut idle = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = process
            .try_exit()
            .context("waiting for the trial's process")?
        {
            break status;
        }
        let now = Instant::now();
        let mut wait = if process.output_closed() {
            // Output ended: the exit is imminent; look again soon, then less often.
            idle = (idle * 2).min(Duration::from_millis(50));
            idle
        } else {
            POLL
        };
        if let (None, Some(limit)) = (&stop, config.trial_timeout) {
            wait = wait.min(limit.saturating_sub(process.started.elapsed()));
        }
        if let (Some((_, at)), false) = (&stop, killed) {
            wait = wait.min((*at + grace).saturating_duration_since(now));
        }
        let event = process.next_event(wait);
        if event.is_none() && scheduled {
            // Every freeze is followed at once by its line's event, so a quiet poll means none
            // is in progress: continue the group anyway. A process forked by the program
            // while the group was being stopped has been seen to stay stopped after the
            // SIGCONT, which would hang the trial (SIGCONT to running processes is a no-op).
            process.signal(Signal::SIGCONT);
        }
        if let Some(event) = event {
            let running = stop.is_none();
            // In a scheduled study the reader stopped the program on this line, so that the
            // state in its scratch directory stays the one of this step while the scheduler
            // decides.
            let step_line = match &event {
                Event::Report(r) if scheduled => r.step,
                _ => None,
            };
            let frozen = step_line.is_some();
            let ahead = if frozen { process.queued_step() } else { None };
            let moment = Moment {
                record: running,
                may_stop: running,
                ahead,
            };
            if let Some(s) = reports.handle(event, trial, config, moment) {
                if stop.is_none() {
                    stop = Some((s, Instant::now()));
                    process.signal(Signal::SIGTERM);
                }
            }
            if let (Some(step), Some(s)) = (step_line, &reports.schedule) {
                acknowledge(&s.ack, step);
            }
            if frozen && ahead.is_none() {
                // Go on (a program being stopped gets its pending SIGTERM now); with more step
                // lines already read it stays stopped until the last of them is handled.
                process.signal(Signal::SIGCONT);
            }
        }
        match shared.stop_level() {
            StopLevel::Run => {}
            StopLevel::Graceful => {
                if stop.is_none() {
                    stop = Some((Stop::Interrupted, Instant::now()));
                    process.signal(Signal::SIGTERM);
                }
            }
            StopLevel::Now => {
                if stop.is_none() {
                    stop = Some((Stop::Interrupted, Instant::now()));
                }
                if !killed {
                    process.signal(Signal::SIGKILL);
                    killed = true;
                }
            }
        }
        if let (None, Some(limit)) = (&stop, config.trial_timeout) {
            if process.started.elapsed() >= limit {
                stop = Some((Stop::TimedOut(limit), Instant::now()));
                process.signal(Signal::SIGTERM);
            }
        }
        if let (Some((_, at)), false) = (&stop, killed) {
            if at.elapsed() >= grace {
                process.signal(Signal::SIGKILL);
                killed = true;
            }
        }
        if last_beat.elapsed() >= config.heartbeat.interval {
            beat(&*storage, id);
            last_beat = Instant::now();
        }
    };
    info.duration = process.started.elapsed();
    let events = process.finish_output(DRAIN);
    let steps: Vec<Option<u64>> = events
        .iter()
        .map(|e| match e {
            Event::Report(r) => r.step,
            _ => None,
        })
        .collect();
    for (k, event) in events.into_iter().enumerate() {
        // Reports that came with a normal exit are recorded; nothing is pruned any more, but
        // a scheduler still takes them (the last step may arrive with the exit).
        let record = stop.is_none();
        let moment = Moment {
            record,
            may_stop: record && scheduled,
            ahead: steps[k + 1..].iter().flatten().max().copied(),
        };
        if let Some(s) = reports.handle(event, trial, config, moment) {
            if stop.is_none() {
                stop = Some((s, Instant::now()));
            }
        }
    }
    info.exit = Some(describe_status(status));
    info.tail = process.stderr_tail();
    info.metrics = reports.latest.clone();
    let tail_hint = tail_hint(&info.tail);
    Ok(match stop.map(|(s, _)| s) {
        Some(Stop::Pruned { step }) => Outcome::Pruned { step: Some(step) },
        Some(Stop::Paused { step }) => Outcome::Paused { step },
        Some(Stop::PastLastStep) => match reports.values(&config.metrics) {
            Ok(values) => Outcome::Complete(values),
            Err(missing) => Outcome::Failed(missing),
        },
        Some(Stop::Broken(reason)) => Outcome::Failed(reason),
        Some(Stop::TimedOut(limit)) => Outcome::Failed(format!(
            "timed out after {} (--trial-timeout){tail_hint}",
            format_duration(limit)
        )),
        Some(Stop::Interrupted) => Outcome::Interrupted(shared.stop_reason()),
        Some(Stop::Lost(why)) => Outcome::Lost(why),
        None if !status.success() => {
            Outcome::Failed(format!("{}{tail_hint}", describe_status(status)))
        }
        None => match reports.short_of_last_step(&config.metrics[0]) {
            Some(reason) => Outcome::Failed(reason + &misplaced(process.misplaced_reports())),
            None => match reports.values(&config.metrics) {
                Ok(values) => Outcome::Complete(values),
                Err(missing) => Outcome::Failed(missing + &misplaced(process.misplaced_reports())),
            },
        },
    })
}

/// When a report is handled.
#[derive(Clone, Copy, Debug)]
struct Moment {
    /// Intermediate values go to the study (not once the runner stopped the trial).
    record: bool,
    /// The pruner, or the scheduler, is asked after them.
    may_stop: bool,
    /// The highest step the program reported after this line (already read, not yet
    /// handled).
    ahead: Option<u64>,
}

/// A scheduled trial's side of the pause-and-resume protocol.
#[derive(Debug)]
struct Scheduled {
    /// The scheduler's last step: a trial that reports it is complete.
    last_step: u64,
    /// The step this run resumed after (0 for a fresh trial): reports up to it are ignored.
    trained: u64,
    /// `FERROTUNE_CHECKPOINT_DIR`.
    scratch: PathBuf,
    /// `FERROTUNE_ACK_FILE`.
    ack: PathBuf,
    /// The highest step the scheduler took.
    last: u64,
    /// Whether the scheduler took the last step.
    reached_last: bool,
    /// How often to beat while a checkpoint is copied.
    heartbeat: Duration,
    /// Reports of steps already trained before this run.
    ignored: u64,
    warned_order: bool,
    warned_empty: bool,
}

/// What the program reported.
#[derive(Default)]
struct Reports {
    /// The latest value of every metric (intermediate or final).
    latest: BTreeMap<String, f64>,
    /// Values from final lines (without a step).
    finals: BTreeMap<String, f64>,
    malformed: usize,
    first_malformed: Option<String>,
    /// A storage or pruner problem was already warned about.
    warned: bool,
    /// With a scheduler.
    schedule: Option<Scheduled>,
}

impl Reports {
    /// Takes one event; returns a reason to stop the process (pruned, paused, lost, …).
    fn handle(
        &mut self,
        event: Event,
        trial: &mut Trial<'_>,
        config: &super::RunConfig,
        moment: Moment,
    ) -> Option<Stop> {
        match event {
            Event::Report(r) => self.report(r, trial, config, moment),
            Event::Malformed { line, error } => {
                self.malformed += 1;
                if self.first_malformed.is_none() {
                    tracing::warn!(trial = trial.number(), "malformed report `{line}`: {error}");
                    self.first_malformed = Some(format!("`{line}` ({error})"));
                }
                None
            }
            Event::Closed => None,
        }
    }

    fn report(
        &mut self,
        r: Report,
        trial: &mut Trial<'_>,
        config: &super::RunConfig,
        moment: Moment,
    ) -> Option<Stop> {
        if !moment.record {
            return None;
        }
        if self.schedule.is_some() {
            if let Some(step) = r.step {
                return self.report_scheduled(step, r, trial, config, moment);
            }
        }
        for (name, v) in &r.metrics {
            self.latest.insert(name.clone(), *v);
        }
        let Some(step) = r.step else {
            self.finals.extend(r.metrics);
            return None;
        };
        let values: Option<Vec<f64>> = config.metrics.iter().map(|m| r.get(m)).collect();
        let values = values?;
        if let Err(e) = trial.report_values(step, &values) {
            return self.problem(trial, "recording a report", e);
        }
        if !moment.may_stop {
            return None;
        }
        match trial.should_prune() {
            Ok(true) => Some(Stop::Pruned { step }),
            Ok(false) => None,
            Err(e) => self.problem(trial, "asking the pruner", e),
        }
    }

    /// A step's report in a scheduled study: checked, recorded, and answered by the
    /// scheduler, which may need the program's state copied into a checkpoint.
    fn report_scheduled(
        &mut self,
        step: u64,
        r: Report,
        trial: &mut Trial<'_>,
        config: &super::RunConfig,
        moment: Moment,
    ) -> Option<Stop> {
        let number = trial.number();
        let s = self.schedule.as_mut()?;
        if step == 0 {
            return Some(Stop::Broken(
                "the program reported step 0, but with a scheduler steps count from 1: report \
                 `ferrotune: step=1 …` after the first step of training (a resumed trial goes on \
                 at FERROTUNE_RESUME_STEP + 1)"
                    .to_owned(),
            ));
        }
        if step <= s.trained {
            if s.ignored == 0 {
                tracing::warn!(
                    trial = number,
                    "the program reported step {step}, but it resumed after step {} \
                     (FERROTUNE_RESUME_STEP): it started over instead of loading \
                     FERROTUNE_RESUME_DIR; reports up to step {} are ignored",
                    s.trained,
                    s.trained
                );
            }
            s.ignored += 1;
            return None;
        }
        if step <= s.last {
            if !s.warned_order {
                s.warned_order = true;
                tracing::warn!(
                    trial = number,
                    "step {step} came after step {}; with a scheduler steps must increase, so \
                     it is ignored",
                    s.last
                );
            }
            return None;
        }
        if step > s.last_step {
            if s.reached_last {
                return Some(Stop::PastLastStep);
            }
            return Some(Stop::Broken(format!(
                "the program reported step {step} before the scheduler's last step {} \
                 (FERROTUNE_MAX_STEP): report every step the scheduler may stop at, up to {}",
                s.last_step, s.last_step
            )));
        }
        for (name, v) in &r.metrics {
            self.latest.insert(name.clone(), *v);
        }
        let value = r.get(&config.metrics[0])?;
        s.last = step;
        if step == s.last_step {
            s.reached_last = true;
        }
        if let Some(ahead) = moment.ahead.filter(|&a| a > step) {
            tracing::warn!(
                trial = number,
                "the program had already reported step {ahead} when the runner read step \
                 {step}: if the scheduler saves a checkpoint at step {step}, it holds a later \
                 state; flush stdout after each report line"
            );
        }
        if !moment.may_stop {
            // Not reached: a scheduled report is always answered.
            return None;
        }
        let storage = trial.study().storage().clone();
        let id = trial.frozen().id;
        let scratch = s.scratch.clone();
        let every = s.heartbeat;
        let empty = AtomicBool::new(false);
        let answer = trial.report_scheduled(step, value, |w| {
            let copied = with_heartbeat(&*storage, id, every, || copy_dir(&scratch, w.dir()));
            match copied {
                Ok(0) => {
                    empty.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(format!(
                    "copying {} into the checkpoint {}: {e}",
                    scratch.display(),
                    w.dir().display()
                )),
            }
        });
        if empty.load(Ordering::Relaxed) && !s.warned_empty {
            s.warned_empty = true;
            tracing::warn!(
                trial = number,
                "the scheduler saved a checkpoint at step {step} but {} \
                 (FERROTUNE_CHECKPOINT_DIR) is empty: the trial will start over when it \
                 resumes; write the state there before printing each report line",
                s.scratch.display()
            );
        }
        match answer {
            Ok(()) => None,
            Err(TrialError::Pruned) => Some(Stop::Pruned { step }),
            Err(TrialError::Paused) => Some(Stop::Paused { step }),
            Err(TrialError::Failed(e)) => {
                if let Some(ferrotune::Error::TrialFinished { state, .. }) =
                    e.downcast_ref::<ferrotune::Error>()
                {
                    return Some(lost(*state));
                }
                Some(Stop::Broken(format!(
                    "the scheduler could not take the report of step {step}: {e}"
                )))
            }
        }
    }

    fn problem(&mut self, trial: &Trial<'_>, what: &str, e: ferrotune::Error) -> Option<Stop> {
        if let ferrotune::Error::TrialFinished { state, .. } = e {
            return Some(lost(state));
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(trial = trial.number(), "{what} failed: {e}");
        }
        None
    }

    /// Why a scheduled trial that exited with status 0 is not complete: it stopped before
    /// the scheduler's last step. `None` without a scheduler, or when it reached it.
    fn short_of_last_step(&self, metric: &str) -> Option<String> {
        let s = self.schedule.as_ref()?;
        if s.reached_last {
            return None;
        }
        let mut reason = if s.last > s.trained {
            format!(
                "the program exited (status 0) after step {}, but the scheduler trains trials \
                 to step {} (FERROTUNE_MAX_STEP): train up to it, or lower --max-resource",
                s.last, s.last_step
            )
        } else {
            format!(
                "the program exited (status 0) without reporting a step{}; with a scheduler it \
                 reports `ferrotune: step=N {metric}=…` after every step up to {} \
                 (FERROTUNE_MAX_STEP)",
                if s.trained > 0 {
                    format!(" after {} (FERROTUNE_RESUME_STEP)", s.trained)
                } else {
                    String::new()
                },
                s.last_step
            )
        };
        if s.ignored > 0 {
            reason.push_str(&format!(
                "; {} report(s) of steps up to {} were ignored: the trial resumed after step {} \
                 (load FERROTUNE_RESUME_DIR and go on at FERROTUNE_RESUME_STEP + 1)",
                s.ignored, s.trained, s.trained
            ));
        }
        if let Some(first) = &self.first_malformed {
            reason.push_str(&format!(
                "; {} report line(s) were malformed (steps are whole numbers from 1), the \
                 first: {first}",
                self.malformed
            ));
        }
        Some(reason)
    }

    /// The objective values: each metric's final value, or its last intermediate one; an
    /// error naming what is missing or NaN, and what was reported instead.
    fn values(&self, metrics: &[String]) -> Result<Vec<f64>, String> {
        let mut values = Vec::with_capacity(metrics.len());
        for m in metrics {
            match self.finals.get(m).or_else(|| self.latest.get(m)) {
                Some(v) if v.is_nan() => return Err(format!("metric `{m}` is NaN")),
                Some(v) => values.push(*v),
                None => {
                    let mut reason = format!(
                        "the program exited with status 0 without reporting `{m}` (print a line \
                         `ferrotune: {m}=<number>` on stdout)"
                    );
                    if !self.latest.is_empty() {
                        let names: Vec<&str> = self.latest.keys().map(String::as_str).collect();
                        reason.push_str(&format!("; it reported: {}", names.join(", ")));
                    }
                    if let Some(first) = &self.first_malformed {
                        reason.push_str(&format!(
                            "; {} report line(s) were malformed, the first: {first}",
                            self.malformed
                        ));
                    }
                    return Err(reason);
                }
            }
        }
        Ok(values)
    }
}

fn lost(state: TrialState) -> Stop {
    Stop::Lost(format!(
        "another runner recorded it as {state} meanwhile (this runner's heartbeat was late); its \
         process was stopped"
    ))
}

/// Tells the program that the runner has handled its report of `step` (see the module docs).
fn acknowledge(file: &Path, step: u64) {
    if let Err(e) = std::fs::write(file, format!("{step}\n")) {
        tracing::warn!(
            "cannot write {} (the program may wait for it): {e}",
            file.display()
        );
    }
}

/// Runs `work` while a thread keeps the trial's heartbeat (a large checkpoint may take longer
/// to copy than the grace period).
fn with_heartbeat<T>(
    storage: &dyn Storage,
    id: TrialId,
    every: Duration,
    work: impl FnOnce() -> T,
) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let beater = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                std::thread::park_timeout(every);
                if !done.load(Ordering::SeqCst) {
                    beat(storage, id);
                }
            }
        });
        let out = work();
        done.store(true, Ordering::SeqCst);
        beater.thread().unpark();
        out
    })
}

/// Copies the contents of `from` into the existing directory `to` (files, directories and
/// symbolic links, recursively); returns how many files it copied.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut files = 0;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            files += copy_dir(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            files += 1;
        }
    }
    Ok(files)
}

fn misplaced(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("; {n} `ferrotune:` line(s) went to stderr, but reports are read from stdout")
    }
}

/// `; stderr ends with: <its last non-empty line>`, or nothing.
fn tail_hint(tail: &[String]) -> String {
    match tail.iter().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            let line = line.trim();
            let shown: String = line.chars().take(REASON_LINE_CHARS).collect();
            let cut = if shown.len() < line.len() { "…" } else { "" };
            format!("; stderr ends with: {shown}{cut}")
        }
        None => String::new(),
    }
}

/// Records the outcome in the study, re-queues or retries, and shows it.
fn conclude(
    shared: &Shared<'_>,
    slot: &Slot,
    study: &Study,
    mut trial: Trial<'_>,
    outcome: Outcome,
    info: &Info,
) -> anyhow::Result<()> {
    let config = shared.config;
    let number = trial.number();
    let id = trial.frozen().id;
    let storage = study.storage().clone();
    let continued_as = trial
        .frozen()
        .system_attrs
        .get(REPLACED_BY_ATTR)
        .and_then(Value::as_u64);
    // The state a paused or stopped trial left behind is in its checkpoint, or not needed.
    // Removed before the outcome is told: another slot may resume a paused trial at once, and
    // give it a fresh scratch directory.
    if let (Some(scratch), Outcome::Paused { .. } | Outcome::Pruned { .. }) =
        (&info.scratch, &outcome)
    {
        if let Err(e) = std::fs::remove_dir_all(scratch) {
            tracing::warn!("cannot remove {}: {e}", scratch.display());
        }
    }
    let told = match &outcome {
        Outcome::Complete(values) => {
            set_metrics(&mut trial, info).and_then(|()| study.tell(trial, values.clone()))
        }
        Outcome::Pruned { .. } => {
            set_metrics(&mut trial, info).and_then(|()| study.tell_pruned(trial))
        }
        Outcome::Paused { .. } => set_metrics(&mut trial, info).and_then(|()| {
            let mut record = trial.frozen().clone();
            record.state = TrialState::Paused;
            study.tell_paused(trial).map(|()| Arc::new(record))
        }),
        Outcome::Failed(reason) | Outcome::Interrupted(reason) => {
            record_failure(
                &*storage,
                id,
                info,
                matches!(outcome, Outcome::Interrupted(_)),
            );
            study.tell_failed(trial, reason)
        }
        Outcome::Lost(why) => {
            drop(trial);
            shared.progress.abandoned();
            shared.progress.error(&format!("trial {number}: {why}"));
            return Ok(());
        }
    };
    let finished = match told {
        Ok(f) => f,
        Err(ferrotune::Error::TrialFinished { state, .. }) => {
            shared.progress.abandoned();
            shared.progress.error(&format!(
                "trial {number}: another runner recorded it as {state} meanwhile (this runner's \
                 heartbeat was late); this run's result is dropped"
            ));
            return Ok(());
        }
        Err(e) => {
            shared.progress.abandoned();
            return Err(anyhow::Error::new(e).context(format!("recording trial {number}")));
        }
    };
    let interrupted = matches!(outcome, Outcome::Interrupted(_));
    let requeued_as = if interrupted {
        Some(budget::requeue_interrupted(study, &finished)?.number)
    } else if finished.state == TrialState::Fail && config.retries > 0 {
        study.retry_trial(&finished)?.map(|t| t.number)
    } else {
        None
    };
    let continued_as = continued_as.filter(|_| finished.state == TrialState::Pruned);
    write_trial_log(
        slot,
        &finished,
        info,
        &outcome,
        requeued_as,
        continued_as,
        interrupted,
    );
    shared.count(&finished, interrupted);
    let at_step = match outcome {
        Outcome::Pruned { step } => step,
        Outcome::Paused { step } => Some(step),
        _ => None,
    };
    let tail: &[String] = if finished.state == TrialState::Fail && !interrupted {
        &info.tail
    } else {
        &[]
    };
    shared.progress.finished(&Finished {
        trial: &finished,
        params: &info.params,
        metrics: &config.metrics,
        duration: info.duration,
        dir: &info.dir,
        at_step,
        resumed_from: info.resumed_from.map(|(_, step)| step),
        continued_as,
        requeued_as,
        interrupted,
        stderr_tail: tail,
    });
    Ok(())
}

/// Keeps every metric reported last in the `metrics` user attribute.
fn set_metrics(trial: &mut Trial<'_>, info: &Info) -> ferrotune::Result<()> {
    if info.metrics.is_empty() {
        return Ok(());
    }
    let metrics: serde_json::Map<String, Value> = info
        .metrics
        .iter()
        .map(|(k, v)| (k.clone(), progress::number(*v)))
        .collect();
    trial.set_user_attr("metrics", metrics)
}

/// Keeps how a failed trial exited and the end of its stderr.
fn record_failure(storage: &dyn Storage, id: TrialId, info: &Info, interrupted: bool) {
    let mut attrs: Vec<(&str, Value)> = Vec::new();
    if let Some(exit) = &info.exit {
        attrs.push(("ferrotune:exit", Value::from(exit.as_str())));
    }
    if !info.tail.is_empty() {
        attrs.push(("ferrotune:stderr_tail", Value::from(info.tail.join("\n"))));
    }
    if interrupted {
        attrs.push(("ferrotune:interrupted", Value::from(true)));
    }
    for (key, value) in attrs {
        if let Err(e) = storage.set_trial_system_attr(id, key, &value) {
            tracing::warn!("cannot record {key} of a failed trial: {e}");
        }
    }
}

fn beat(storage: &dyn Storage, id: TrialId) {
    if let Err(e) = storage.record_heartbeat(id) {
        tracing::warn!("heartbeat of trial {id} failed: {e}");
    }
}

/// Creates the trial's directory. One left by an earlier study of the same name (trial
/// numbers restart) is moved aside, never deleted.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = dir
            .file_name()
            .map_or_else(|| "trial".to_owned(), |n| n.to_string_lossy().into_owned());
        let aside = dir.with_file_name(format!("{name}.stale-{secs}"));
        std::fs::rename(dir, &aside).with_context(|| {
            format!(
                "moving the earlier {} aside to {}",
                dir.display(),
                aside.display()
            )
        })?;
        tracing::warn!(
            "{} held an earlier trial's files (a study of the same name?); moved to {}",
            dir.display(),
            aside.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// `ferrotune.log` in the trial's directory: what ran, where, and how it ended (a resumed
/// trial adds a block per run).
fn write_trial_log(
    slot: &Slot,
    t: &FrozenTrial,
    info: &Info,
    outcome: &Outcome,
    requeued_as: Option<u64>,
    continued_as: Option<u64>,
    interrupted: bool,
) {
    if !info.dir.is_dir() {
        return;
    }
    let mut text = format!(
        "trial:    {}\ncommand:  {}\nslot:     {}{}{}\nstarted:  {}\nduration: {}\n",
        t.number,
        shell_words(&info.argv),
        slot.index,
        if slot.gpus.is_empty() {
            String::new()
        } else {
            format!(" (CUDA_VISIBLE_DEVICES={})", slot.gpus.join(","))
        },
        if slot.cpus.is_empty() {
            String::new()
        } else {
            format!(" (cores {})", cpu_list(&slot.cpus))
        },
        ferrotune::export::rfc3339(info.started),
        format_duration(info.duration),
    );
    if let Some((from, step)) = info.resumed_from {
        let whose = if from == t.number {
            "its own".to_owned()
        } else {
            format!("trial {from}'s")
        };
        text.push_str(&format!(
            "resumed:  after step {step}, from {whose} checkpoint\n"
        ));
    }
    if let Some(exit) = &info.exit {
        text.push_str(&format!("exit:     {exit}\n"));
    }
    let state = match outcome {
        _ if interrupted => "interrupted".to_owned(),
        Outcome::Paused { step } => format!("paused at step {step}"),
        _ => t.state.to_string(),
    };
    text.push_str(&format!("outcome:  {state}"));
    if let Some(values) = &t.values {
        text.push_str(&format!(" {values:?}"));
    }
    if let Some(reason) = &t.fail_reason {
        text.push_str(&format!(": {reason}"));
    }
    if let Some(n) = requeued_as {
        text.push_str(&format!(" (repeated as trial {n})"));
    }
    if let Some(n) = continued_as {
        text.push_str(&format!(
            " (exploited: trial {n} goes on from another checkpoint)"
        ));
    }
    text.push('\n');
    if t.state == TrialState::Fail && !info.tail.is_empty() {
        text.push_str("stderr (last lines):\n");
        for line in &info.tail {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    let path = info.dir.join("ferrotune.log");
    // A resumed trial's runs follow one another in the same log (a fresh trial's directory is
    // new, so appending starts the file); one write, since the next run may already be going.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            if f.metadata()?.len() > 0 {
                text.insert(0, '\n');
            }
            f.write_all(text.as_bytes())
        });
    if let Err(e) = written {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(lines: &[&str]) -> Reports {
        let mut r = Reports::default();
        for line in lines {
            match super::super::protocol::parse_line(line).expect("report line") {
                Ok(report) => {
                    for (k, v) in &report.metrics {
                        r.latest.insert(k.clone(), *v);
                    }
                    if report.step.is_none() {
                        r.finals.extend(report.metrics);
                    }
                }
                Err(e) => {
                    r.malformed += 1;
                    r.first_malformed
                        .get_or_insert_with(|| format!("`{line}` ({e})"));
                }
            }
        }
        r
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_final_value_wins_and_the_last_intermediate_one_stands_in() {
        let r = reports(&[
            "ferrotune: step=1 loss=0.9 acc=0.5",
            "ferrotune: loss=0.4",
            "ferrotune: step=2 loss=0.3 acc=0.7",
        ]);
        assert_eq!(r.values(&names(&["loss", "acc"])), Ok(vec![0.4, 0.7]));
        let r = reports(&["ferrotune: step=1 loss=0.9", "ferrotune: step=2 loss=0.8"]);
        assert_eq!(r.values(&names(&["loss"])), Ok(vec![0.8]));
    }

    #[test]
    fn missing_and_nan_metrics_say_what_was_seen() {
        let r = reports(&["ferrotune: step=1 loss=0.9", "ferrotune: what?"]);
        let err = r.values(&names(&["val_loss"])).unwrap_err();
        assert!(err.contains("without reporting `val_loss`"), "{err}");
        assert!(err.contains("it reported: loss"), "{err}");
        assert!(err.contains("1 report line(s) were malformed"), "{err}");
        assert!(err.contains("`ferrotune: what?`"), "{err}");
        let r = reports(&["ferrotune: loss=nan"]);
        assert_eq!(
            r.values(&names(&["loss"])),
            Err("metric `loss` is NaN".to_owned())
        );
    }

    #[test]
    fn failure_reasons_quote_the_last_stderr_line() {
        assert_eq!(tail_hint(&[]), "");
        let tail = vec![
            "Traceback".to_owned(),
            "ValueError: boom".to_owned(),
            " ".to_owned(),
        ];
        assert_eq!(tail_hint(&tail), "; stderr ends with: ValueError: boom");
        let long = vec!["x".repeat(500)];
        assert!(tail_hint(&long).ends_with("x…"));
    }
}
