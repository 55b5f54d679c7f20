//! Objectives: what a study optimizes, and how a trial ends.

use crate::trial::Trial;
use std::fmt;

/// Why an objective did not return values: it was pruned, or it failed.
///
/// Any error converts into `Failed` through `?` (including `anyhow::Error` and `String`), so
/// objectives use the error handling they already have.
pub enum TrialError {
    /// The trial was stopped early (after `should_prune` said so).
    Pruned,
    /// A scheduler paused the trial after saving its checkpoint (see
    /// [`Trial::report_scheduled`]); a worker resumes it later.
    Paused,
    /// The trial failed; the message is stored as its fail reason.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl TrialError {
    /// A failure with a message.
    pub fn fail(message: impl fmt::Display) -> Self {
        TrialError::Failed(message.to_string().into())
    }
}

impl<E> From<E> for TrialError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(e: E) -> Self {
        TrialError::Failed(e.into())
    }
}

impl fmt::Debug for TrialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrialError::Pruned => f.write_str("Pruned"),
            TrialError::Paused => f.write_str("Paused"),
            TrialError::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

impl fmt::Display for TrialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrialError::Pruned => f.write_str("pruned"),
            TrialError::Paused => f.write_str("paused"),
            TrialError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Objective values: one `f64`, or one per objective.
pub trait IntoValues {
    /// The values, one per objective.
    fn into_values(self) -> Vec<f64>;
}

impl IntoValues for f64 {
    fn into_values(self) -> Vec<f64> {
        vec![self]
    }
}
impl IntoValues for Vec<f64> {
    fn into_values(self) -> Vec<f64> {
        self
    }
}
impl<const N: usize> IntoValues for [f64; N] {
    fn into_values(self) -> Vec<f64> {
        self.to_vec()
    }
}
impl IntoValues for (f64, f64) {
    fn into_values(self) -> Vec<f64> {
        vec![self.0, self.1]
    }
}

/// What a study optimizes. Implemented for every
/// `Fn(&mut Trial) -> Result<impl IntoValues, TrialError> + Send + Sync`.
pub trait Objective: Send + Sync {
    /// Evaluates one trial.
    fn evaluate(&self, trial: &mut Trial<'_>) -> Result<Vec<f64>, TrialError>;
}

impl<F, O> Objective for F
where
    F: Fn(&mut Trial<'_>) -> Result<O, TrialError> + Send + Sync,
    O: IntoValues,
{
    fn evaluate(&self, trial: &mut Trial<'_>) -> Result<Vec<f64>, TrialError> {
        self(trial).map(IntoValues::into_values)
    }
}
