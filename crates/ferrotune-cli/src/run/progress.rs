//! What the runner shows while it works, in one of four modes:
//!
//! - **bar** (stderr is a terminal): a progress bar with the study's finished trials out of
//!   `--trials`, how many run now, are pruned or failed, the best value and elapsed time/ETA,
//!   and a line per finished trial above it;
//! - **lines** (stderr is not a terminal, e.g. a CI log): the per-trial lines only;
//! - **quiet** (`--quiet`): only failed trials and errors;
//! - **json** (`--json`): one JSON object per finished trial on stdout, and a summary object
//!   at the end (`"event": "trial"` / `"summary"`); errors still go to stderr.

use super::duration::format_duration;
use ferrotune::{Direction, FrozenTrial, ParamValue, TrialState};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How the runner reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A progress bar and a line per trial (a terminal).
    Bar,
    /// A line per trial (not a terminal).
    Lines,
    /// Failures and errors only.
    Quiet,
    /// JSON Lines on stdout.
    Json,
}

impl Mode {
    /// The mode the flags ask for: `--json` wins, then `--quiet`, then whether stderr is a
    /// terminal.
    pub fn choose(json: bool, quiet: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// The study's standing, as the bar shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Trials with a final outcome (a failed trial that was retried is not one: its retry is).
    pub done: u64,
    /// Complete trials.
    pub complete: u64,
    /// Pruned trials.
    pub pruned: u64,
    /// Failed attempts (retried or not).
    pub failed: u64,
    /// Trials paused by the scheduler (they count as done until they are resumed).
    pub paused: u64,
    /// Trials this runner is running now.
    pub running: u64,
    /// The best value and its trial (one objective).
    pub best: Option<(f64, u64)>,
}

/// One finished trial, as the runner shows it.
pub struct Finished<'a> {
    /// The final record.
    pub trial: &'a FrozenTrial,
    /// Every parameter, `None` when inactive.
    pub params: &'a BTreeMap<String, Option<ParamValue>>,
    /// The objective names, in order.
    pub metrics: &'a [String],
    /// How long the program ran.
    pub duration: Duration,
    /// The trial's directory.
    pub dir: &'a Path,
    /// The step at which it was pruned or paused.
    pub at_step: Option<u64>,
    /// The step it resumed after (its own checkpoint, or a PBT parent's).
    pub resumed_from: Option<u64>,
    /// The PBT child that continues it (an exploited member).
    pub continued_as: Option<u64>,
    /// The number of the trial that repeats it (a retry, or after an interruption).
    pub requeued_as: Option<u64>,
    /// Whether it was stopped by Ctrl-C.
    pub interrupted: bool,
    /// The end of its stderr (kept for failures).
    pub stderr_tail: &'a [String],
}

/// Shows progress; shared by the slot threads.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    counts: Mutex<Counts>,
    direction: Option<Direction>,
    failure_lines: usize,
}

/// How many stderr lines a failed trial shows on the terminal (all 50 are in its record).
const SHOWN_TAIL: usize = 10;

impl Progress {
    /// Starts showing progress of a study that has `counts` so far, toward `target` trials.
    pub fn new(mode: Mode, counts: Counts, target: Option<u64>, directions: &[Direction]) -> Self {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = match target {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                    .with_style(
                        ProgressStyle::with_template(
                            "{elapsed_precise} [{bar:24}] {pos}/{len} ETA {eta}  {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    ),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                    .with_style(
                        ProgressStyle::with_template(
                            "{spinner} {elapsed_precise} {pos} trials  {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
            };
            bar.set_position(counts.done);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let p = Progress {
            mode,
            bar,
            counts: Mutex::new(counts),
            direction: (directions.len() == 1).then(|| directions[0]),
            failure_lines: SHOWN_TAIL,
        };
        p.redraw();
        p
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A snapshot of the counts.
    pub fn counts(&self) -> Counts {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn redraw(&self) {
        let Some(bar) = &self.bar else { return };
        let c = self.lock().clone();
        let mut msg = format!(
            "running {} · pruned {} · failed {}",
            c.running, c.pruned, c.failed
        );
        if c.paused > 0 {
            msg.push_str(&format!(" · paused {}", c.paused));
        }
        if let Some((v, n)) = c.best {
            msg.push_str(&format!(" · best {} (#{n})", short(v)));
        }
        bar.set_position(c.done);
        bar.set_message(msg);
    }

    /// Prints a line on stderr (above the bar), in every mode.
    pub fn error(&self, text: &str) {
        self.print(text);
    }

    /// Prints a line on stderr (above the bar), except in quiet and JSON modes.
    pub fn info(&self, text: &str) {
        if matches!(self.mode, Mode::Bar | Mode::Lines) {
            self.print(text);
        }
    }

    fn print(&self, text: &str) {
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// A line of a trial's output, shown with `--tee`.
    pub fn tee(&self, number: u64, line: &str) {
        self.print(&format!("[trial {number}] {line}"));
    }

    /// A trial started.
    pub fn started(&self) {
        self.lock().running += 1;
        self.redraw();
    }

    /// A paused trial was resumed: it is no longer done.
    pub fn resumed(&self) {
        let mut c = self.lock();
        c.paused = c.paused.saturating_sub(1);
        c.done = c.done.saturating_sub(1);
        drop(c);
        self.redraw();
    }

    /// A trial ended without an outcome of its own (it could not be started, or another
    /// worker finished it).
    pub fn abandoned(&self) {
        let mut c = self.lock();
        c.running = c.running.saturating_sub(1);
        drop(c);
        self.redraw();
    }

    /// A trial finished: counts it, and prints its line or JSON object.
    pub fn finished(&self, f: &Finished<'_>) {
        let t = f.trial;
        let mut new_best = false;
        {
            let mut c = self.lock();
            c.running = c.running.saturating_sub(1);
            if f.requeued_as.is_none() && f.continued_as.is_none() {
                c.done += 1;
            }
            match t.state {
                TrialState::Complete => {
                    c.complete += 1;
                    if let (Some(d), Some(v)) = (self.direction, t.value()) {
                        if c.best.is_none_or(|(b, _)| d.better(v, b)) {
                            c.best = Some((v, t.number));
                            new_best = true;
                        }
                    }
                }
                TrialState::Pruned => c.pruned += 1,
                TrialState::Paused => c.paused += 1,
                _ => c.failed += 1,
            }
        }
        self.redraw();
        match self.mode {
            Mode::Json => {
                let line = trial_json(f);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            Mode::Quiet if t.state != TrialState::Fail || f.interrupted => {}
            _ => self.print(&self.trial_line(f, new_best)),
        }
    }

    fn trial_line(&self, f: &Finished<'_>, new_best: bool) -> String {
        let t = f.trial;
        let values = || match &t.values {
            Some(v) => f
                .metrics
                .iter()
                .zip(v)
                .map(|(m, x)| format!("{m}={}", short(*x)))
                .collect::<Vec<_>>()
                .join(" "),
            None => String::new(),
        };
        let took = format_duration(f.duration);
        let params = compact_params(f.params);
        let resumed = f
            .resumed_from
            .map_or_else(String::new, |s| format!(" (resumed after step {s})"));
        match t.state {
            TrialState::Complete => format!(
                "trial {}  complete{resumed}  {}  {took}  {params}{}",
                t.number,
                values(),
                if new_best { "  (new best)" } else { "" }
            ),
            TrialState::Pruned if f.continued_as.is_some() => format!(
                "trial {}  exploited{}{resumed}: continues as trial {}  {}  {took}  {params}",
                t.number,
                f.at_step
                    .map_or_else(String::new, |s| format!(" at step {s}")),
                f.continued_as.unwrap_or_default(),
                values()
            ),
            TrialState::Pruned => format!(
                "trial {}  pruned{}{resumed}  {}  {took}  {params}",
                t.number,
                f.at_step
                    .map_or_else(String::new, |s| format!(" at step {s}")),
                values()
            ),
            TrialState::Paused => format!(
                "trial {}  paused{}{resumed}  {}  {took}  {params}",
                t.number,
                f.at_step
                    .map_or_else(String::new, |s| format!(" at step {s}")),
                t.intermediate_values
                    .values()
                    .next_back()
                    .map(|v| f
                        .metrics
                        .iter()
                        .zip(v)
                        .map(|(m, x)| format!("{m}={}", short(*x)))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            ),
            _ if f.interrupted => format!(
                "trial {}  interrupted{}",
                t.number,
                f.requeued_as
                    .map_or_else(String::new, |n| format!("; re-queued as trial {n}"))
            ),
            _ => {
                let mut s = format!(
                    "trial {}  failed  {took}  {}{}\n    logs: {}",
                    t.number,
                    t.fail_reason.as_deref().unwrap_or("unknown reason"),
                    f.requeued_as
                        .map_or_else(String::new, |n| format!(" (retried as trial {n})")),
                    f.dir.display()
                );
                let skip = f.stderr_tail.len().saturating_sub(self.failure_lines);
                for line in &f.stderr_tail[skip..] {
                    s.push_str("\n    | ");
                    s.push_str(line);
                }
                s
            }
        }
    }

    /// Clears the bar (the summary follows).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            self.redraw();
            bar.finish_and_clear();
        }
    }
}

/// A value in few characters: `0.4123`, `1.23e-7`.
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || (1e-4..1e6).contains(&x.abs()) {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".to_owned()
        } else {
            s.to_owned()
        }
    } else {
        format!("{x:.4e}")
    }
}

/// `lr=0.01 layers=3` (inactive parameters left out).
fn compact_params(params: &BTreeMap<String, Option<ParamValue>>) -> String {
    params
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", super::template::value_text(v)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One finished trial as a JSON object (`--json`).
pub fn trial_json(f: &Finished<'_>) -> Value {
    let t = f.trial;
    let values: Value = match &t.values {
        Some(v) => f
            .metrics
            .iter()
            .zip(v)
            .map(|(m, x)| (m.clone(), number(*x)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        None => Value::Null,
    };
    json!({
        "event": "trial",
        "trial": t.number,
        "state": if f.interrupted { "interrupted".to_owned() } else { t.state.to_string() },
        "values": values,
        "params": f.params,
        "duration_s": f.duration.as_secs_f64(),
        "pruned_at_step": (t.state == TrialState::Pruned).then_some(f.at_step).flatten(),
        "paused_at_step": (t.state == TrialState::Paused).then_some(f.at_step).flatten(),
        "resumed_from_step": f.resumed_from,
        "continued_as": f.continued_as,
        "reason": t.fail_reason,
        "requeued_as": f.requeued_as,
        "dir": f.dir.display().to_string(),
    })
}

/// A float as JSON: a number, or a string for the non-finite ones JSON lacks.
pub fn number(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(x.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.412_345_678), "0.412346");
        assert_eq!(short(3.0), "3");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(-2.5), "-2.5");
        assert_eq!(short(1.234_567e-7), "1.2346e-7");
        assert_eq!(short(f64::INFINITY), "inf");
    }

    #[test]
    fn json_lines_carry_values_by_metric() {
        let mut t = FrozenTrial::new_running(ferrotune::trial::TrialId(3), 3);
        t.state = TrialState::Complete;
        t.values = Some(vec![0.25, f64::NAN]);
        let mut params = BTreeMap::new();
        params.insert("lr".to_owned(), Some(ParamValue::Float(0.1)));
        params.insert("m".to_owned(), None);
        let metrics = ["loss".to_owned(), "acc".to_owned()];
        let f = Finished {
            trial: &t,
            params: &params,
            metrics: &metrics,
            duration: Duration::from_millis(1500),
            dir: Path::new("/r/trial-3"),
            at_step: None,
            resumed_from: None,
            continued_as: None,
            requeued_as: None,
            interrupted: false,
            stderr_tail: &[],
        };
        let v = trial_json(&f);
        assert_eq!(v["event"], "trial");
        assert_eq!(v["trial"], 3);
        assert_eq!(v["state"], "complete");
        assert_eq!(v["values"]["loss"], 0.25);
        assert_eq!(v["values"]["acc"], "NaN");
        assert_eq!(v["params"], json!({"lr": 0.1, "m": null}));
        assert_eq!(v["duration_s"], 1.5);
        let p = Progress::new(
            Mode::Quiet,
            Counts::default(),
            Some(10),
            &[Direction::Minimize],
        );
        let line = p.trial_line(&f, true);
        assert!(
            line.contains("complete  loss=0.25 acc=NaN  1.5s  lr=0.1  (new best)"),
            "{line}"
        );

        // Scheduled trials: paused at a rung, and exploited by PBT.
        let mut paused = FrozenTrial::new_running(ferrotune::trial::TrialId(4), 4);
        paused.state = TrialState::Paused;
        paused.intermediate_values.insert(3, vec![0.5, 0.9]);
        let f = Finished {
            trial: &paused,
            at_step: Some(3),
            resumed_from: Some(1),
            ..f
        };
        let line = p.trial_line(&f, false);
        assert!(
            line.starts_with("trial 4  paused at step 3 (resumed after step 1)  loss=0.5 acc=0.9"),
            "{line}"
        );
        let v = trial_json(&f);
        assert_eq!(v["state"], "paused");
        assert_eq!(v["paused_at_step"], 3);
        assert_eq!(v["pruned_at_step"], Value::Null);
        let mut exploited = paused.clone();
        exploited.state = TrialState::Pruned;
        let f = Finished {
            trial: &exploited,
            resumed_from: None,
            continued_as: Some(9),
            ..f
        };
        let line = p.trial_line(&f, false);
        assert!(
            line.starts_with("trial 4  exploited at step 3: continues as trial 9"),
            "{line}"
        );
        assert_eq!(trial_json(&f)["continued_as"], 9);
    }
}
