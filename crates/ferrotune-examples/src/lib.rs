//! Real tuning jobs for ferrotune, kept out of the library and the CLI so their machine-learning
//! dependency (smartcore) never slows those builds.
//!
//! [`digits`] evaluates a random forest, an SVM and a k-nearest-neighbours classifier with
//! cross-validation on the digits dataset, and trains a small neural network
//! ([`digits::MlpTrainer`], plain Rust) epoch by epoch; [`jobs`] defines their search spaces
//! as ferrotune objectives, the network's reporting every epoch so a pruner can stop it (the
//! `digits` binary runs them).

pub mod digits;
pub mod jobs;
