//! Helpers shared by the pruners' tests.

use crate::error::Result;
use crate::pruner::PrunerSpec;
use crate::study::{Direction, Study};
use crate::trial::{FrozenTrial, Trial, TrialId};

/// A single-objective in-memory study with no pruner of its own (tests call pruners directly).
pub(crate) fn study(direction: Direction) -> Result<Study> {
    study_with(vec![direction])
}

/// [`study`] with one direction per objective.
pub(crate) fn study_with(directions: Vec<Direction>) -> Result<Study> {
    Study::builder()
        .directions(directions)
        .pruner(PrunerSpec::Nop)
        .seed(1)
        .build()
}

/// A minimizing [`study`] with a given name (Hyperband's bracket assignment hashes it).
pub(crate) fn named_study(name: &str) -> Result<Study> {
    Study::builder()
        .name(name)
        .direction(Direction::Minimize)
        .pruner(PrunerSpec::Nop)
        .seed(1)
        .build()
}

/// A running trial of `study` reporting `curve[i]` at step `i`.
pub(crate) fn running<'s>(study: &'s Study, curve: &[f64]) -> Result<Trial<'s>> {
    let mut t = study.ask()?;
    for (step, &v) in curve.iter().enumerate() {
        t.report(step as u64, v)?;
    }
    Ok(t)
}

/// A running trial record reporting `curve[i]` at step `i`.
pub(crate) fn curve_trial(curve: &[f64]) -> FrozenTrial {
    let mut t = FrozenTrial::new_running(TrialId(0), 0);
    for (step, &v) in curve.iter().enumerate() {
        t.intermediate_values.insert(step as u64, vec![v]);
    }
    t
}
