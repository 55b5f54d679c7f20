//! `TrialState`: where a trial is in its life.

use serde::{Deserialize, Serialize};

/// The state of a trial.
///
/// `Running`, `Waiting` and `Paused` are the live states; `Complete`, `Pruned` and `Fail` are
/// final, and a finished trial never changes again. Leaving `Running` (or claiming a `Waiting` or
/// `Paused` trial) is a compare-and-set in storage, so two workers can never both finish one
/// trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Being evaluated by a worker.
    Running,
    /// Finished with objective values.
    Complete,
    /// Stopped early by a pruner.
    Pruned,
    /// Failed: the objective returned an error, panicked, returned NaN, or its worker died.
    Fail,
    /// Created ahead of time (enqueued or a retry), waiting for a worker to claim it.
    Waiting,
    /// Paused by a scheduler with a checkpoint, to be resumed later. Never treated as stale.
    Paused,
}

impl TrialState {
    /// Whether the state is final (Complete, Pruned or Fail).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Fail
        )
    }

    /// Every state, in declaration order.
    pub const ALL: [TrialState; 6] = [
        TrialState::Running,
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Fail,
        TrialState::Waiting,
        TrialState::Paused,
    ];

    /// The lower-case name used in JSON, the CLI and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Fail => "fail",
            TrialState::Waiting => "waiting",
            TrialState::Paused => "paused",
        }
    }
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TrialState {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        TrialState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                crate::Error::invalid_argument(
                    "state",
                    format!("unknown trial state `{s}`; expected one of running, complete, pruned, fail, waiting, paused"),
                )
            })
    }
}
