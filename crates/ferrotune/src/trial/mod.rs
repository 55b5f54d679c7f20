//! Trials: the live, define-by-run handle an objective suggests parameters through, and the
//! immutable record storage keeps.

mod frozen;
mod live;
mod params;
mod state;

pub use frozen::{FrozenTrial, TrialId};
pub use live::{Suggest, Trial};
pub use params::{Iter, Param, Params};
pub use state::TrialState;

pub(crate) use frozen::{check_values, CONSTRAINT_PREFIX};
pub(crate) use params::SharedSpecs;
