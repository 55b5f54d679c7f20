//! ferrotune storage on SQLite: a study in one file, shared by many threads and processes.
//!
//! ```no_run
//! use ferrotune::Study;
//! use ferrotune_sqlite::SqliteStorage;
//! use std::sync::Arc;
//!
//! # fn main() -> ferrotune::Result<()> {
//! let storage = Arc::new(SqliteStorage::open("sqlite:///ferrotune.db")?);
//! let study = Study::builder()
//!     .name("my-study")
//!     .storage(storage)
//!     .load_if_exists(true)
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! Start the same program in several processes (or on several threads) and they share the
//! study: trial numbers are assigned in write transactions, and leaving Running is a
//! compare-and-set, so no number is handed out twice and no trial is finished twice.
//!
//! # URLs
//! `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite://` (in memory) or a plain path;
//! options `?synchronous=normal|full|off|extra` and `?timeout=SECONDS`. See [`SqliteConfig`].
//!
//! # How it works
//! - One connection per storage behind a mutex; WAL journal, so readers never block the
//!   writer; `busy_timeout` (30 s by default) plus retries when another process holds the
//!   write lock. Every write is one `BEGIN IMMEDIATE` transaction, so a check and the write it
//!   guards (the next trial number, the trial cap, a state compare-and-set, a first-writer-wins
//!   attribute) can never interleave with another process's.
//! - A versioned schema ([`SCHEMA_VERSION`], [`MIGRATIONS`]): an older database is migrated
//!   when opened; a newer one is refused before anything is written.
//! - Every write to a trial stamps it with its study's next sequence number. The storage keeps
//!   each study's trials in memory and [`trials`](ferrotune::Storage::trials) fetches only the
//!   trials stamped since its last read, so reading a 10 000-trial history costs what changed,
//!   not the whole history, and stays exact while other processes write.
//! - Heartbeats and stale-trial detection use SQLite's clock (`unixepoch('subsec')`), shared by
//!   every process on the machine.
//!
//! SQLite's locks need a local file system: on NFS and similar, use PostgreSQL instead.

mod codec;
mod config;
mod error;
mod schema;
mod storage;

pub use config::{Location, SqliteConfig, Synchronous, DEFAULT_BUSY_TIMEOUT};
pub use schema::{MIGRATIONS, SCHEMA_VERSION};
pub use storage::SqliteStorage;
