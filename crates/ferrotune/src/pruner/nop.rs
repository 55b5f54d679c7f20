//! `NopPruner`: never prunes.

use super::Pruner;
use crate::error::Result;
use crate::study::StudyView;
use crate::trial::FrozenTrial;

/// Never prunes: every trial runs to the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct NopPruner;

impl Pruner for NopPruner {
    fn prune(&self, _study: &StudyView<'_>, _trial: &FrozenTrial) -> Result<bool> {
        Ok(false)
    }
}
