//! Benchmark problems with known optima, and (to come) the harness that runs every sampler
//! against its peers on them. `peers/` holds the Python scripts that measure Optuna and
//! Rustuna on the same loops.

pub mod harness;
pub mod problem;
pub mod report;
pub mod synthetic;

pub use problem::{suite, Conditional, Mixed, Noisy, Problem};
pub use synthetic::{Synthetic, SYNTHETIC};
