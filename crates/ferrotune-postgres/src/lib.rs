//! # ferrotune-postgres
//!
//! A [`ferrotune::Storage`] on PostgreSQL: one study shared by many worker processes on many
//! machines. Every worker connects to the same database and runs the same study:
//!
//! ```no_run
//! use ferrotune::{Optimize, Study, Trial, TrialError};
//! use ferrotune_postgres::PostgresStorage;
//! use std::sync::Arc;
//!
//! let storage = PostgresStorage::connect("postgres://hpo:secret@db.internal:5432/hpo")?;
//! let study = Study::builder()
//!     .name("resnet-lr")
//!     .storage(Arc::new(storage))
//!     .load_if_exists(true)
//!     .build()?;
//! study.optimize(
//!     |t: &mut Trial| -> Result<f64, TrialError> {
//!         let lr = t.suggest_float_log("lr", 1e-5, 1e-1)?;
//!         Ok((lr.log10() + 3.0).powi(2))
//!     },
//!     Optimize::trials(100),
//! )?;
//! # Ok::<(), ferrotune::Error>(())
//! ```
//!
//! ## How workers agree
//! - Trial numbers come from a counter in the study's row, incremented in the statement that
//!   inserts the trial; the `max_trials` cap is checked in that same statement.
//! - Finishing (or claiming) a trial is one compare-and-set statement
//!   (`UPDATE … WHERE id = $1 AND state = $2`): two workers never both win.
//! - First-writer-wins study attributes (the grid sampler's claims) are
//!   `INSERT … ON CONFLICT DO NOTHING`, then a read of the winner.
//! - Writes to a trial share-lock its row, so nothing lands on a trial after it finished.
//! - Heartbeats and stale-trial checks use the database's clock.
//!
//! ## Reading history
//! Finished trials never change, so each storage caches them: reading a study fetches, in one
//! statement, only the trials finished since its last read (tracked by a per-study sequence
//! that transactions bump in commit order) and the live ones.
//!
//! ## Schema
//! Tables are prefixed `ferrotune_` and versioned in `ferrotune_schema_version`; connecting
//! creates or upgrades them (under an advisory lock), and refuses, writing nothing, a schema
//! newer than this library's [`SCHEMA_VERSION`]. `?schema=name` (or
//! [`PostgresOptions::schema`]) keeps them in their own PostgreSQL schema;
//! [`PostgresOptions::migrate`]`(false)` connects without ever creating or upgrading them
//! (read-only users, dashboards).
//!
//! ## TLS
//! With the `tls` feature, connections use rustls with libpq's `sslmode` meanings: `prefer`
//! (default) and `require` encrypt without checking the certificate (unless `sslrootcert`
//! is given), `verify-ca` checks the chain, `verify-full` the chain and the host name. Roots
//! are `sslrootcert=/path/ca.pem` or else the Mozilla set (webpki-roots). Without the
//! feature, `prefer` connects in plain text and the other TLS modes are refused.
//!
//! ## Secrets
//! The password never appears in `Debug` output or error messages: the storage shows its URL
//! with `***` in its place, and driver errors are scrubbed.

mod error;
mod pool;
mod schema;
mod sql;
mod storage;
mod tls;
mod url;

pub use schema::SCHEMA_VERSION;
pub use storage::{PostgresOptions, PostgresStorage};
