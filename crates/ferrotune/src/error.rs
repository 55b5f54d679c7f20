//! The library's error type: every message names the offending value, the bound it broke and,
//! where there is one, the fix.

use crate::trial::TrialState;

/// Shorthand for results whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside ferrotune.
///
/// The enum is `#[non_exhaustive]`: backends and future samplers add variants without breaking
/// callers that match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A search-space definition is malformed (bounds, step, log scale, choices).
    #[error("invalid distribution: {0}")]
    InvalidDistribution(String),

    /// A value does not belong to the distribution it was checked against.
    #[error("value {value} is outside the distribution {distribution}")]
    ValueOutOfDistribution {
        /// The offending value, rendered.
        value: String,
        /// The distribution, rendered.
        distribution: String,
    },

    /// The same parameter name was suggested with two different distributions in one trial
    /// (or across trials where the distributions must agree).
    #[error(
        "parameter `{name}` was first suggested as {first} and now as {second}; \
         use one distribution per name (rename one of them if they are different parameters)"
    )]
    IncompatibleDistribution {
        /// The parameter name.
        name: String,
        /// The distribution it was first suggested with.
        first: String,
        /// The distribution of the conflicting call.
        second: String,
    },

    /// An argument of a constructor or call is outside its valid range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// Objective values were given that do not fit the study.
    #[error("invalid objective values: {0}")]
    InvalidValues(String),

    /// No study with this name exists in the storage.
    #[error("study `{0}` not found; create it first or check the name with `ferrotune studies`")]
    StudyNotFound(String),

    /// A study with this name already exists.
    #[error("study `{0}` already exists; load it (load_if_exists) or pick another name")]
    DuplicateStudy(String),

    /// A study was reopened with a configuration that differs from the stored one.
    #[error(
        "study `{study}` was created with {field} = {stored}, but it was reopened with {given}; \
         drop the option to use the stored value or create a new study"
    )]
    ConfigConflict {
        /// The study name.
        study: String,
        /// The configuration field in conflict.
        field: &'static str,
        /// The stored value, rendered.
        stored: String,
        /// The value given on reopening, rendered.
        given: String,
    },

    /// No trial with this id or number exists.
    #[error("trial {0} not found")]
    TrialNotFound(String),

    /// A trial that has left Running was written to.
    #[error("trial #{number} is already {state:?} and cannot be updated")]
    TrialFinished {
        /// The trial number.
        number: u64,
        /// Its current state.
        state: TrialState,
    },

    /// A best trial was asked for but there is none yet.
    #[error("no completed trial yet{0}")]
    NoCompletedTrial(&'static str),

    /// The operation is not defined for the study's number of objectives.
    #[error("{0}")]
    Unsupported(String),

    /// The study was stopped (by `stop()`, a sampler exhausting its space, the trial cap, or
    /// Ctrl-C).
    #[error("the study was stopped: {0}")]
    Stopped(String),

    /// The objective failed and the failure was not in the `catch` set, so the study stopped.
    #[error("trial #{number} failed and stopped the study: {message}")]
    ObjectiveFailed {
        /// The trial number.
        number: u64,
        /// The failure message.
        message: String,
    },

    /// A storage backend failed (I/O, database, serialization).
    #[error("storage error: {0}")]
    Storage(String),

    /// A checkpoint could not be saved, found or read (the message names the path and the
    /// fix).
    #[error("checkpoint error: {0}")]
    Checkpoint(String),

    /// JSON (de)serialization of a stored value failed.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
}

impl Error {
    /// Builds an [`Error::InvalidArgument`].
    pub(crate) fn invalid_argument(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}
