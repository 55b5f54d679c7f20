//! Benchmark problems with known optima, and the harness that runs every sampler against its
//! peers on them: Optuna's and Rustuna's samplers run through the Python driver
//! `bench/peers/optuna_driver.py` ([`peer`]) on the very problems ferrotune sees. Beside it,
//! `bench/peers/` holds the Python scripts that measure Optuna and Rustuna on the overhead and
//! storage loops, and `requirements.txt`, which pins the peers.

pub mod digits_net;
pub mod fidelity;
pub mod harness;
#[cfg(feature = "lcbench")]
pub mod lcbench;
pub mod ml;
pub mod peer;
pub mod problem;
pub mod report;
pub mod schedsim;
pub mod simulate;
pub mod stats;
pub mod svg;
pub mod synthetic;
pub mod tabular;
pub mod trainable;

pub use ml::DigitsProblem;
pub use problem::{find_problems, suite, Conditional, FindError, Mixed, Noisy, Problem};
pub use synthetic::{Synthetic, SYNTHETIC};
pub use tabular::{tabular_problems, TabularError, TabularProblem};
