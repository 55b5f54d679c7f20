//! Helpers shared by the pruners' tests.

use crate::error::Result;
use crate::pruner::PrunerSpec;
use crate::study::{Direction, Study};
use crate::trial::{FrozenTrial, TrialId};

/// A single-objective in-memory study with no pruner of its own (tests call pruners directly).
pub(crate) fn study(direction: Direction) -> Result<Study> {
    Study::builder()
        .direction(direction)
        .pruner(PrunerSpec::Nop)
        .seed(1)
        .build()
}

/// A running trial record reporting `curve[i]` at step `i`.
pub(crate) fn curve_trial(curve: &[f64]) -> FrozenTrial {
    let mut t = FrozenTrial::new_running(TrialId(0), 0);
    for (step, &v) in curve.iter().enumerate() {
        t.intermediate_values.insert(step as u64, vec![v]);
    }
    t
}
