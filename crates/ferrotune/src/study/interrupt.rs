//! Ctrl-C during `optimize`: the first press lets running trials finish and starts no new one;
//! the second marks the running trials Fail and exits with status 130. Outside `optimize`,
//! Ctrl-C keeps its default effect.
//!
//! One SIGINT flag is registered per process (signal-hook) and one watcher thread turns presses
//! into these actions, so nothing but an atomic store runs inside the signal handler.

use super::optimize::Run;
use crate::error::{Error, Result};
use crate::trial::TrialState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// The optimize calls in progress in this process.
static ACTIVE: Mutex<Vec<Weak<Run>>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Keeps an optimize call registered for Ctrl-C handling while it lives.
pub(crate) struct Guard {
    run: Weak<Run>,
}

impl Guard {
    pub(crate) fn register(run: &Arc<Run>) -> Result<Guard> {
        INSTALLED
            .get_or_init(install)
            .clone()
            .map_err(|e| Error::Unsupported(format!("cannot handle Ctrl-C: {e}")))?;
        let weak = Arc::downgrade(run);
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(weak.clone());
        Ok(Guard { run: weak })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| !w.ptr_eq(&self.run) && w.strong_count() > 0);
    }
}

fn install() -> std::result::Result<(), String> {
    let pressed = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, pressed.clone())
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("ferrotune-ctrl-c".into())
        .spawn(move || watch(&pressed))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn watch(pressed: &AtomicBool) {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if !pressed.swap(false, Ordering::SeqCst) {
            continue;
        }
        let runs: Vec<Arc<Run>> = ACTIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        if runs.is_empty() {
            // No optimize call to wind down: behave as if we had never hooked SIGINT.
            let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
            continue;
        }
        for run in &runs {
            if !run.interrupted.swap(true, Ordering::SeqCst) {
                let n = run.running.lock().unwrap_or_else(|e| e.into_inner()).len();
                run.study.inner.stop.stop("interrupted by Ctrl-C");
                eprintln!(
                    "ferrotune: Ctrl-C: finishing {n} running trial(s) of study `{}`; press Ctrl-C again to abort them",
                    run.study.name()
                );
            } else {
                abort(run);
            }
        }
    }
}

fn abort(run: &Run) {
    let running: Vec<_> = run
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect();
    for id in running {
        let _ = run.study.storage().set_trial_state(
            id,
            TrialState::Running,
            TrialState::Fail,
            None,
            Some("interrupted by Ctrl-C"),
        );
    }
    eprintln!("ferrotune: aborted; running trials were marked failed");
    std::process::exit(130);
}
