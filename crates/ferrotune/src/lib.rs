//! # ferrotune
//!
//! Hyperparameter optimization with define-by-run search spaces: an objective asks a
//! [`Trial`] for the parameters it needs, trains, and returns its validation loss; a [`Study`]
//! runs it many times, with a [`sampler`] proposing parameters from the history and a
//! [`pruner`] stopping unpromising trials early — or a [`schedule`]r pausing them with a
//! checkpoint and resuming the promising ones (ASHA with promotion, synchronous successive
//! halving and Hyperband, BOHB, PBT, PB2; see [`Trial::report_scheduled`]). Everything that
//! coordinates trials goes through a [`Storage`], so the same study runs in one thread, many
//! threads, or many processes sharing a database.
//!
//! ```
//! use ferrotune::{Direction, Optimize, SamplerSpec, Study, Trial, TrialError};
//!
//! let study = Study::builder()
//!     .direction(Direction::Minimize)
//!     .sampler(SamplerSpec::Random)
//!     .seed(42)
//!     .build()?;
//! study.optimize(
//!     |trial: &mut Trial| -> Result<f64, TrialError> {
//!         let x = trial.suggest_float("x", -10.0, 10.0)?;
//!         let kind: &str = trial.suggest_categorical("kind", &["square", "abs"])?;
//!         Ok(if kind == "square" { (x - 2.0).powi(2) } else { (x - 2.0).abs() })
//!     },
//!     Optimize::trials(200),
//! )?;
//! assert!(study.best_value()? < 0.5);
//! # Ok::<(), ferrotune::Error>(())
//! ```

mod error;
pub mod export;
pub(crate) mod math;
mod objective;
pub mod pareto;
pub mod pruner;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod space;
pub mod storage;
pub mod study;
pub mod trial;

pub use error::{Error, Result};
pub use objective::{IntoValues, Objective, TrialError};
pub use pruner::{Pruner, PrunerSpec};
pub use sampler::{Sampler, SamplerSpec};
pub use space::{
    CategoricalDistribution, Distribution, FloatDistribution, IntDistribution, ParamValue,
};
pub use storage::{InMemoryStorage, Storage};
pub use study::{
    Catch, Direction, Heartbeat, Optimize, RetryPolicy, Study, StudyBuilder, StudyView,
};
pub use trial::{FrozenTrial, Param, Params, Trial, TrialState};
