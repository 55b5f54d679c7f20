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
//! A failed trial keeps the last 50 lines of its stderr in the `ferrotune:stderr_tail` system
//! attribute and how it exited in `ferrotune:exit`; where and how it ran (host, pid, directory,
//! command line, slot) is in `ferrotune:process`. Complete and pruned trials keep every metric
//! they reported last in the `metrics` user attribute. Each trial directory holds
//! `params.json`, `stdout.log`, `stderr.log` and `ferrotune.log` (the command line, the slot
//! and the outcome).

use super::child::{describe_status, Event, Launch, Process, Stream};
use super::duration::format_duration;
use super::environment::{params_json, trial_env, TrialIdentity};
use super::progress::{self, Finished};
use super::protocol::Report;
use super::slots::{cpu_list, Slot};
use super::template::shell_words;
use super::{budget, Shared, StopLevel};
use anyhow::Context;
use ferrotune::trial::TrialId;
use ferrotune::{FrozenTrial, ParamValue, Storage, Study, Trial, TrialState};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often a running trial is looked at when nothing happens (its output wakes the runner
/// at once, so this bounds only the timing of time limits and heartbeats).
const POLL: Duration = Duration::from_millis(100);
/// After its exit, how long a program's output may take to reach its end.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest stderr line quoted in a failure reason.
const REASON_LINE_CHARS: usize = 200;

/// Why the runner stopped a trial's process.
#[derive(Debug, Clone)]
enum Stop {
    Pruned {
        step: u64,
    },
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
    let mut info = Info {
        dir: shared.config.workdir.join(format!("trial-{number}")),
        params: BTreeMap::new(),
        argv: Vec::new(),
        duration: Duration::ZERO,
        started: SystemTime::now(),
        exit: None,
        tail: Vec::new(),
        metrics: BTreeMap::new(),
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
    prepare_dir(&info.dir)?;
    let params_file = info.dir.join("params.json");
    std::fs::write(&params_file, params_json(&info.params))
        .with_context(|| format!("writing {}", params_file.display()))?;
    let env = trial_env(
        &TrialIdentity {
            study: &config.study,
            number: trial.number(),
            dir: &info.dir,
            params_file: &params_file,
            slot,
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
    let outcome = watch(shared, trial, &mut process, info);
    shared.add_busy(info.duration);
    outcome
}

/// Watches the process until it exits: records reports, asks the pruner, enforces the time
/// limit and Ctrl-C, keeps the heartbeat.
fn watch(
    shared: &Shared<'_>,
    trial: &mut Trial<'_>,
    process: &mut Process,
    info: &mut Info,
) -> anyhow::Result<Outcome> {
    let config = shared.config;
    let storage = trial.study().storage().clone();
    let id = trial.frozen().id;
    let grace = config.kill_grace;
    let mut reports = Reports::default();
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
        if let Some(event) = process.next_event(wait) {
            let running = stop.is_none();
            if let Some(s) = reports.handle(event, trial, config, running, running) {
                if stop.is_none() {
                    stop = Some((s, Instant::now()));
                    process.signal(Signal::SIGTERM);
                }
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
    for event in process.finish_output(DRAIN) {
        // Reports that came with a normal exit are recorded; nothing is pruned any more.
        reports.handle(event, trial, config, stop.is_none(), false);
    }
    info.exit = Some(describe_status(status));
    info.tail = process.stderr_tail();
    info.metrics = reports.latest.clone();
    let tail_hint = tail_hint(&info.tail);
    Ok(match stop.map(|(s, _)| s) {
        Some(Stop::Pruned { step }) => Outcome::Pruned { step: Some(step) },
        Some(Stop::TimedOut(limit)) => Outcome::Failed(format!(
            "timed out after {} (--trial-timeout){tail_hint}",
            format_duration(limit)
        )),
        Some(Stop::Interrupted) => Outcome::Interrupted(shared.stop_reason()),
        Some(Stop::Lost(why)) => Outcome::Lost(why),
        None if !status.success() => {
            Outcome::Failed(format!("{}{tail_hint}", describe_status(status)))
        }
        None => match reports.values(&config.metrics) {
            Ok(values) => Outcome::Complete(values),
            Err(missing) => Outcome::Failed(missing + &misplaced(process.misplaced_reports())),
        },
    })
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
}

impl Reports {
    /// Takes one event; returns a reason to stop the process (pruned, or lost). `record`:
    /// intermediate values go to the study (not once the runner stopped the trial);
    /// `may_prune`: the pruner is asked after them.
    fn handle(
        &mut self,
        event: Event,
        trial: &mut Trial<'_>,
        config: &super::RunConfig,
        record: bool,
        may_prune: bool,
    ) -> Option<Stop> {
        match event {
            Event::Report(r) => self.report(r, trial, config, record, may_prune),
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
        record: bool,
        may_prune: bool,
    ) -> Option<Stop> {
        if !record {
            return None;
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
        if !may_prune {
            return None;
        }
        match trial.should_prune() {
            Ok(true) => Some(Stop::Pruned { step }),
            Ok(false) => None,
            Err(e) => self.problem(trial, "asking the pruner", e),
        }
    }

    fn problem(&mut self, trial: &Trial<'_>, what: &str, e: ferrotune::Error) -> Option<Stop> {
        if let ferrotune::Error::TrialFinished { state, .. } = e {
            return Some(Stop::Lost(format!(
                "another runner recorded it as {state} meanwhile (this runner's heartbeat was \
                 late); its process was stopped"
            )));
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(trial = trial.number(), "{what} failed: {e}");
        }
        None
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
    let told = match &outcome {
        Outcome::Complete(values) => {
            set_metrics(&mut trial, info).and_then(|()| study.tell(trial, values.clone()))
        }
        Outcome::Pruned { .. } => {
            set_metrics(&mut trial, info).and_then(|()| study.tell_pruned(trial))
        }
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
    write_trial_log(slot, &finished, info, requeued_as, interrupted);
    shared.count(&finished, interrupted);
    let pruned_at = match outcome {
        Outcome::Pruned { step } => step,
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
        pruned_at,
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

/// `ferrotune.log` in the trial's directory: what ran, where, and how it ended.
fn write_trial_log(
    slot: &Slot,
    t: &FrozenTrial,
    info: &Info,
    requeued_as: Option<u64>,
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
    if let Some(exit) = &info.exit {
        text.push_str(&format!("exit:     {exit}\n"));
    }
    let state = if interrupted {
        "interrupted".to_owned()
    } else {
        t.state.to_string()
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
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(text.as_bytes()));
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
