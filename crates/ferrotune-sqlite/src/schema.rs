//! The versioned schema: embedded migrations, applied in order, recorded in `schema_version`.
//!
//! `MIGRATIONS[k]` turns a database at version `k` into version `k + 1` (version 0 is an empty
//! file). Released migrations are never edited: a change to the schema is a new migration.

use crate::error::{Fail, Res};
use ferrotune::Error;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// Version 1, the first released schema.
///
/// Values are JSON arrays (see the codec), times are Unix seconds, states lower-case names.
/// Parameters keep their internal value (the index of a categorical choice) and their
/// distribution as JSON, like Optuna's `trial_params`. Attributes of studies and trials share
/// one table each, `system` telling user (0) from system (1) ones.
const V1: &str = r#"
CREATE TABLE schema_version (
    version         INTEGER PRIMARY KEY,
    library_version TEXT NOT NULL,
    applied_at      REAL NOT NULL
);
CREATE TABLE studies (
    study_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    directions_json TEXT NOT NULL,
    created         REAL NOT NULL
);
CREATE TABLE study_attrs (
    study_id   INTEGER NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    system     INTEGER NOT NULL,
    key        TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (study_id, system, key)
) WITHOUT ROWID;
CREATE TABLE trials (
    trial_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id          INTEGER NOT NULL REFERENCES studies(study_id) ON DELETE CASCADE,
    number            INTEGER NOT NULL,
    state             TEXT NOT NULL,
    values_json       TEXT,
    datetime_start    REAL,
    datetime_complete REAL,
    fail_reason       TEXT,
    heartbeat         REAL,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials(study_id, state, number);
CREATE TABLE trial_params (
    trial_id          INTEGER NOT NULL REFERENCES trials(trial_id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    internal          REAL NOT NULL,
    distribution_json TEXT NOT NULL,
    PRIMARY KEY (trial_id, name)
) WITHOUT ROWID;
CREATE TABLE trial_intermediate_values (
    trial_id    INTEGER NOT NULL REFERENCES trials(trial_id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    PRIMARY KEY (trial_id, step)
) WITHOUT ROWID;
CREATE TABLE trial_attrs (
    trial_id   INTEGER NOT NULL REFERENCES trials(trial_id) ON DELETE CASCADE,
    system     INTEGER NOT NULL,
    key        TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (trial_id, system, key)
) WITHOUT ROWID;
"#;

/// Version 2: a change marker for incremental reads.
///
/// A trial is stamped with its study's next sequence number (`MAX(seq) + 1`, found through
/// `trials_by_seq`) when it is created or changes state, and when anything is written to it
/// while it is not Running. A reader that is current to sequence `s` re-reads only the trials
/// with `seq > s` and the Running ones (whose parameters, reports and attributes are written
/// without a stamp, so that a report costs one page write), so reading a long study's history
/// costs what changed, not the whole history. Existing trials get `seq = number + 1`.
///
/// Two triggers stamp what a version-1 worker still running during the upgrade writes (it
/// knows nothing of `seq`): its new trials and its state changes. This version's own writes
/// set `seq` themselves, so the triggers' conditions are false for them.
const V2: &str = r#"
ALTER TABLE trials ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE trials SET seq = number + 1;
CREATE INDEX trials_by_seq ON trials(study_id, seq);
CREATE TRIGGER trials_stamp_insert AFTER INSERT ON trials WHEN NEW.seq = 0
BEGIN
    UPDATE trials SET seq = (SELECT MAX(seq) + 1 FROM trials WHERE study_id = NEW.study_id)
    WHERE trial_id = NEW.trial_id;
END;
CREATE TRIGGER trials_stamp_state AFTER UPDATE OF state ON trials WHEN NEW.seq = OLD.seq
BEGIN
    UPDATE trials SET seq = (SELECT MAX(seq) + 1 FROM trials WHERE study_id = NEW.study_id)
    WHERE trial_id = NEW.trial_id;
END;
"#;

/// The SQL of every schema version, in order: `MIGRATIONS[k]` upgrades version `k` to `k + 1`.
pub const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this ferrotune writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The schema version of an open database without writing anything: 0 for an empty one.
pub(crate) fn read_version(conn: &Connection, db: &str) -> Res<u32> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == "schema_version") {
        let shown: Vec<&str> = tables.iter().take(8).map(String::as_str).collect();
        return Err(Error::Storage(format!(
            "`{db}` is a SQLite database but not a ferrotune one (it has the tables {} and no \
             schema_version); use another file for ferrotune",
            shown.join(", ")
        ))
        .into());
    }
    let version: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

/// The error for a database written by a newer ferrotune.
pub(crate) fn too_new(db: &str, version: u32) -> Fail {
    Error::Storage(format!(
        "database `{db}` has schema version {version}, but this ferrotune ({}) knows versions up \
         to {SCHEMA_VERSION}; it was written by a newer ferrotune: upgrade ferrotune (and \
         ferrotune-sqlite) to open it. Nothing was written to the file.",
        env!("CARGO_PKG_VERSION")
    ))
    .into()
}

/// Brings the database to [`SCHEMA_VERSION`] in one write transaction (rechecking the version
/// inside it, so processes opening a new file at once migrate it exactly once).
pub(crate) fn migrate(conn: &mut Connection, db: &str) -> Res<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = read_version(&tx, db)?;
    if current > SCHEMA_VERSION {
        return Err(too_new(db, current));
    }
    for version in current + 1..=SCHEMA_VERSION {
        let sql = MIGRATIONS[version as usize - 1];
        tx.execute_batch(sql).map_err(|e| {
            Fail::Lib(Error::Storage(format!(
                "migrating `{db}` to schema version {version} failed: {e}; the database was \
                 left at version {current}"
            )))
        })?;
        tx.execute(
            "INSERT INTO schema_version (version, library_version, applied_at) \
             VALUES (?1, ?2, unixepoch('subsec'))",
            rusqlite::params![version, env!("CARGO_PKG_VERSION")],
        )?;
        if current > 0 {
            tracing::info!(db, version, "migrated the ferrotune schema");
        }
    }
    tx.commit()?;
    Ok(())
}
