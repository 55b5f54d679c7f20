//! `SqliteStorage`: the [`Storage`] implementation.

use crate::codec::{decode_values, encode_values, from_secs, parse_state, to_secs};
use crate::config::{Location, SqliteConfig};
use crate::error::{is_busy, sql_error, Fail, Res};
use crate::schema::{self, SCHEMA_VERSION};
use ferrotune::space::Distribution;
use ferrotune::storage::{FrozenStudy, Storage, StudyId};
use ferrotune::study::Direction;
use ferrotune::trial::{FrozenTrial, Param, Params, TrialId, TrialState};
use ferrotune::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A [`Storage`] in a SQLite database file (or in memory).
///
/// Open one with [`SqliteStorage::open`] (creates the file) or
/// [`SqliteStorage::open_existing`] (for commands that only read); share it between threads
/// with an `Arc`. Any number of processes may open the same file at once.
///
/// Errors are [`Error::Storage`] with a message naming the file and the fix, or the
/// library's own errors (`StudyNotFound`, `TrialFinished`, …) as the trait documents.
pub struct SqliteStorage {
    inner: Mutex<Inner>,
    /// The database as shown in messages: its absolute path, or `:memory:`.
    db: String,
    /// The database file, resolved; `None` in memory.
    path: Option<PathBuf>,
    config: SqliteConfig,
    trials_loaded: AtomicU64,
}

struct Inner {
    conn: Connection,
    timeout: Duration,
    /// Per study: its trials as last read, and the sequence number they are current to.
    cache: HashMap<StudyId, StudyCache>,
    specs: SpecCache,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("db", &self.db)
            .field("synchronous", &self.config.synchronous)
            .field("busy_timeout", &self.config.busy_timeout)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Opening

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

impl SqliteStorage {
    /// Opens the database a URL or path names, creating the file when it is missing, and
    /// migrates an older schema. See [`SqliteConfig`] for the URL forms and options.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_config(&SqliteConfig::parse(url)?, true)
    }

    /// Opens an existing database: a missing file is an error instead of a new empty
    /// database (for commands that only read). An older schema is still migrated.
    pub fn open_existing(url: &str) -> Result<Self> {
        Self::open_config(&SqliteConfig::parse(url)?, false)
    }

    /// A private in-memory database (for tests; nothing is shared or kept).
    pub fn in_memory() -> Result<Self> {
        Self::open_config(&SqliteConfig::memory(), true)
    }

    /// Opens the database `config` describes; with `create`, a missing file is created.
    pub fn open_config(config: &SqliteConfig, create: bool) -> Result<Self> {
        let timeout = config.busy_timeout;
        let (mut conn, db, path) = match &config.location {
            Location::Memory => {
                if !create {
                    return Err(Error::Storage(
                        "an in-memory database never exists before it is opened; give a file \
                         path or URL to open an existing database"
                            .into(),
                    ));
                }
                let conn =
                    Connection::open_in_memory().map_err(|e| sql_error(":memory:", &e, timeout))?;
                (conn, ":memory:".to_owned(), None)
            }
            Location::File(path) => {
                let absolute = resolve(path);
                let db = absolute.display().to_string();
                check_file(&absolute, &db, create)?;
                let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if create {
                    flags |= OpenFlags::SQLITE_OPEN_CREATE;
                }
                let conn = Connection::open_with_flags(&absolute, flags)
                    .map_err(|e| sql_error(&db, &e, timeout))?;
                (conn, db, Some(absolute))
            }
        };
        prepare(&mut conn, config, &db).map_err(|e| e.into_error(&db, timeout))?;
        Ok(SqliteStorage {
            inner: Mutex::new(Inner {
                conn,
                timeout,
                cache: HashMap::new(),
                specs: SpecCache::default(),
            }),
            db,
            path,
            config: config.clone(),
            trials_loaded: AtomicU64::new(0),
        })
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The configuration the storage was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// The database's schema version (always [`SCHEMA_VERSION`] once opened).
    pub fn schema_version(&self) -> Result<u32> {
        let db = self.db.clone();
        self.with(|inner| {
            read(&mut inner.conn, inner.timeout, |tx| {
                schema::read_version(tx, &db)
            })
        })
    }

    /// How many trial records this storage has read from the database so far: a measure of
    /// the cache's work (an unchanged study costs none), for diagnostics and tests.
    pub fn trials_loaded(&self) -> u64 {
        self.trials_loaded.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change to `Inner` happens after its transaction committed, in one step, so a
        // panic elsewhere cannot leave it half-updated; a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the locked connection, explaining SQLite errors.
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> Res<T>) -> Result<T> {
        let mut inner = self.lock();
        f(&mut inner).map_err(|e| e.into_error(&self.db, self.config.busy_timeout))
    }
}

/// The absolute path of a database file, with its directory's `..` and symbolic links resolved
/// when the directory exists (for messages, and so that every process names the file alike).
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|dir| dir.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

/// Checks a database file before SQLite opens it, so that a file that is not a database is
/// refused with a clear message and left untouched.
fn check_file(path: &Path, db: &str, create: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Storage(format!(
            "`{db}` is a directory, not a database file; give a file path such as \
             sqlite:///{}/ferrotune.db",
            path.display()
        ))),
        Ok(m) if m.len() == 0 => Ok(()),
        Ok(_) => {
            let mut head = Vec::with_capacity(100);
            std::fs::File::open(path)
                .and_then(|f| f.take(100).read_to_end(&mut head))
                .map_err(|e| Error::Storage(format!("cannot read `{db}`: {e}")))?;
            if head.len() < 100 || !head.starts_with(SQLITE_HEADER) {
                return Err(Error::Storage(format!(
                    "`{db}` is not a SQLite database ({}); point the storage at a ferrotune \
                     database, or at a new file name to create one. The file was not changed.",
                    describe_head(&head)
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                let cwd = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(Error::Storage(format!(
                    "no database at `{db}`: the file does not exist. Check the path (sqlite:///x.db \
                     is relative to the working directory, {cwd}; sqlite:////x.db is absolute), \
                     or create the study first"
                )));
            }
            if let Some(parent) = path.parent() {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    return Err(Error::Storage(format!(
                        "cannot create `{db}`: the directory `{}` does not exist; create it first",
                        parent.display()
                    )));
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::Storage(format!("cannot read `{db}`: {e}"))),
    }
}

/// What a file that is not a database starts with, for the error message.
fn describe_head(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    let printable =
        !text.contains('\u{FFFD}') && text.chars().all(|c| !c.is_control() || c.is_whitespace());
    if printable {
        let start: String = text.chars().take(24).collect();
        format!(
            "it looks like a text file starting with {:?}",
            start.trim_end()
        )
    } else {
        let bytes: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "its first bytes are {} instead of the SQLite header",
            bytes.join(" ")
        )
    }
}

/// Connection settings, version check (writing nothing when the file is too new, corrupt or
/// not ferrotune's), WAL, and migration.
fn prepare(conn: &mut Connection, config: &SqliteConfig, db: &str) -> Res<()> {
    let timeout = config.busy_timeout;
    conn.busy_timeout(timeout)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
        config.synchronous.as_str()
    ))?;
    let version = retry(timeout, || schema::read_version(conn, db))?;
    if version > SCHEMA_VERSION {
        return Err(schema::too_new(db, version));
    }
    if config.location != Location::Memory {
        let mode: String = retry(timeout, || {
            Ok(conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?)
        })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                db,
                mode,
                "SQLite refused WAL mode; readers will block writers"
            );
        }
    }
    if version < SCHEMA_VERSION {
        retry(timeout, || schema::migrate(conn, db))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// Runs `f` again while another connection's lock makes it fail, until `timeout` has passed.
/// (SQLite's busy handler already waits inside each statement; this covers the cases where
/// SQLite gives up at once to avoid a deadlock.)
fn retry<T>(timeout: Duration, mut f: impl FnMut() -> Res<T>) -> Res<T> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        match f() {
            Err(Fail::Sql(e)) if is_busy(&e) && start.elapsed() < timeout => {
                let base_us = 500u64 << attempt.min(6);
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0),
                ) % base_us;
                std::thread::sleep(Duration::from_micros(base_us + jitter));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A write transaction (`BEGIN IMMEDIATE`: the write lock is taken before anything is read,
/// so what `f` checks still holds when it writes).
fn write<T>(
    conn: &mut Connection,
    timeout: Duration,
    mut f: impl FnMut(&Connection) -> Res<T>,
) -> Res<T> {
    retry(timeout, || {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    })
}

/// A read transaction: one consistent snapshot for every statement in `f`.
fn read<T>(
    conn: &mut Connection,
    timeout: Duration,
    mut f: impl FnMut(&Connection) -> Res<T>,
) -> Res<T> {
    retry(timeout, || {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    })
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn sid(id: StudyId) -> Res<i64> {
    i64::try_from(id.0).map_err(|_| study_not_found(id))
}

fn tid(id: TrialId) -> Res<i64> {
    i64::try_from(id.0).map_err(|_| Error::TrialNotFound(id.to_string()).into())
}

fn study_not_found(id: StudyId) -> Fail {
    Error::StudyNotFound(format!("id {}", id.0)).into()
}

fn trial_not_found(id: TrialId) -> Fail {
    Error::TrialNotFound(id.to_string()).into()
}

fn bad_data(what: impl std::fmt::Display) -> Fail {
    Error::Storage(format!(
        "unexpected data in the database ({what}); was it modified outside ferrotune?"
    ))
    .into()
}

fn text(v: ValueRef<'_>) -> Res<&str> {
    v.as_str().map_err(bad_data)
}

fn u64_of(v: i64) -> Res<u64> {
    u64::try_from(v).map_err(|_| bad_data(format!("negative id or number {v}")))
}

fn step_i64(step: u64) -> Res<i64> {
    i64::try_from(step).map_err(|_| {
        Error::InvalidArgument {
            name: "step",
            reason: format!(
                "step {step} is larger than {} (SQLite integers are 64-bit signed)",
                i64::MAX
            ),
        }
        .into()
    })
}

/// Whether the study exists.
fn study_exists(tx: &Connection, study: i64) -> Res<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM studies WHERE study_id = ?1")?
        .query_row([study], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The next trial number of a study (its trial count: numbers are dense), or `None` when the
/// study does not exist.
fn next_number(tx: &Connection, study: i64) -> Res<Option<i64>> {
    Ok(tx
        .prepare_cached(
            "SELECT (SELECT COALESCE(MAX(number) + 1, 0) FROM trials WHERE study_id = ?1) \
             FROM studies WHERE study_id = ?1",
        )?
        .query_row([study], |r| r.get(0))
        .optional()?)
}

/// The study's next sequence number, for a trial write (sequence numbers only grow: trials
/// are never deleted one by one).
fn next_seq(tx: &Connection, study: i64) -> Res<i64> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM trials WHERE study_id = ?1")?
        .query_row([study], |r| r.get(0))?)
}

/// Stamps a trial as changed, unless it is Running (readers re-read Running trials anyway).
fn touch(tx: &Connection, study: i64, trial: i64, state: TrialState) -> Res<()> {
    if state == TrialState::Running {
        return Ok(());
    }
    let seq = next_seq(tx, study)?;
    tx.prepare_cached("UPDATE trials SET seq = ?2 WHERE trial_id = ?1")?
        .execute(params![trial, seq])?;
    Ok(())
}

/// A trial's study, number and state.
fn trial_row(tx: &Connection, trial: i64) -> Res<Option<(i64, u64, TrialState)>> {
    let mut stmt =
        tx.prepare_cached("SELECT study_id, number, state FROM trials WHERE trial_id = ?1")?;
    let mut rows = stmt.query([trial])?;
    match rows.next()? {
        None => Ok(None),
        Some(r) => Ok(Some((
            r.get(0)?,
            u64_of(r.get(1)?)?,
            parse_state(text(r.get_ref(2)?)?)?,
        ))),
    }
}

/// A trial that may still be written to, as (study, trial, state): errors when it is missing
/// or finished.
fn live_trial(tx: &Connection, id: TrialId) -> Res<(i64, i64, TrialState)> {
    let trial = tid(id)?;
    match trial_row(tx, trial)? {
        None => Err(trial_not_found(id)),
        Some((_, number, state)) if state.is_finished() => {
            Err(Error::TrialFinished { number, state }.into())
        }
        Some((study, _, state)) => Ok((study, trial, state)),
    }
}

fn to_json(v: &Value) -> Res<String> {
    Ok(serde_json::to_string(v)?)
}

// ---------------------------------------------------------------------------------------------
// Reading studies

const STUDY_COLS: &str = "SELECT study_id, name, directions_json, created FROM studies";

fn study_from_row(r: &rusqlite::Row<'_>) -> Res<FrozenStudy> {
    let directions: Vec<Direction> = serde_json::from_str(text(r.get_ref(2)?)?)?;
    Ok(FrozenStudy {
        id: StudyId(u64_of(r.get(0)?)?),
        name: r.get(1)?,
        directions,
        user_attrs: BTreeMap::new(),
        system_attrs: BTreeMap::new(),
        created: from_secs(r.get(3)?).unwrap_or(std::time::UNIX_EPOCH),
    })
}

/// Studies matching `filter` (a WHERE clause over `studies`, or empty), with their attributes.
fn load_studies(tx: &Connection, filter: &str, args: &[&dyn ToSql]) -> Res<Vec<FrozenStudy>> {
    let mut stmt = tx.prepare_cached(&format!("{STUDY_COLS} {filter} ORDER BY study_id"))?;
    let mut rows = stmt.query(args)?;
    let mut studies = Vec::new();
    while let Some(r) = rows.next()? {
        studies.push(study_from_row(r)?);
    }
    if studies.is_empty() {
        return Ok(studies);
    }
    let index: HashMap<u64, usize> = studies
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.0, i))
        .collect();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT a.study_id, a.system, a.key, a.value_json FROM study_attrs a \
         WHERE a.study_id IN (SELECT study_id FROM studies {filter})"
    ))?;
    let mut rows = stmt.query(args)?;
    while let Some(r) = rows.next()? {
        let Some(&i) = index.get(&u64_of(r.get(0)?)?) else {
            continue;
        };
        let system: i64 = r.get(1)?;
        let key: String = r.get(2)?;
        let value: Value = serde_json::from_str(text(r.get_ref(3)?)?)?;
        let study = &mut studies[i];
        if system != 0 {
            study.system_attrs.insert(key, value);
        } else {
            study.user_attrs.insert(key, value);
        }
    }
    Ok(studies)
}

// ---------------------------------------------------------------------------------------------
// Reading trials

/// The four queries that read trials (rows, params, intermediate values, attrs) for the trial
/// ids one query selects. The selection is the outer loop (`CROSS JOIN` keeps it so), so only
/// the selected trials' rows are looked up, by primary key.
macro_rules! trial_queries {
    ($select:literal) => {
        [
            concat!(
                "WITH sel(trial_id) AS (",
                $select,
                ") SELECT t.trial_id, t.number, t.state, t.values_json, t.datetime_start, \
                 t.datetime_complete, t.fail_reason, t.seq \
                 FROM sel CROSS JOIN trials t ON t.trial_id = sel.trial_id ORDER BY t.number"
            ),
            concat!(
                "WITH sel(trial_id) AS (",
                $select,
                ") SELECT p.trial_id, p.name, p.internal, p.distribution_json \
                 FROM sel CROSS JOIN trial_params p ON p.trial_id = sel.trial_id"
            ),
            concat!(
                "WITH sel(trial_id) AS (",
                $select,
                ") SELECT v.trial_id, v.step, v.values_json \
                 FROM sel CROSS JOIN trial_intermediate_values v ON v.trial_id = sel.trial_id"
            ),
            concat!(
                "WITH sel(trial_id) AS (",
                $select,
                ") SELECT a.trial_id, a.system, a.key, a.value_json \
                 FROM sel CROSS JOIN trial_attrs a ON a.trial_id = sel.trial_id"
            ),
        ]
    };
}

/// The trials of study `?1` stamped after sequence number `?2`, and its Running trials. (Two
/// index searches: an `OR` in one WHERE clause would scan the study.)
const CHANGED_SINCE: [&str; 4] = trial_queries!(
    "SELECT trial_id FROM trials WHERE study_id = ?1 AND seq > ?2 \
     UNION SELECT trial_id FROM trials WHERE study_id = ?1 AND state = 'running'"
);
/// The trial `?1`.
const ONE_TRIAL: [&str; 4] = trial_queries!("SELECT ?1");

/// A trial as read, with the sequence number it is current to.
struct Loaded {
    seq: i64,
    trial: FrozenTrial,
}

fn load_trials(
    tx: &Connection,
    specs: &mut SpecCache,
    queries: &[&str; 4],
    args: &[&dyn ToSql],
) -> Res<Vec<Loaded>> {
    let mut out: Vec<Loaded> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(queries[0])?;
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let values = match r.get_ref(3)?.as_str_or_null().map_err(bad_data)? {
                Some(s) => Some(decode_values(s)?),
                None => None,
            };
            let start: Option<f64> = r.get(4)?;
            let complete: Option<f64> = r.get(5)?;
            let trial = FrozenTrial {
                id: TrialId(u64_of(id)?),
                number: u64_of(r.get(1)?)?,
                state: parse_state(text(r.get_ref(2)?)?)?,
                values,
                params: Params::new(),
                intermediate_values: BTreeMap::new(),
                datetime_start: start.and_then(from_secs),
                datetime_complete: complete.and_then(from_secs),
                user_attrs: BTreeMap::new(),
                system_attrs: BTreeMap::new(),
                fail_reason: r.get(6)?,
            };
            index.insert(id, out.len());
            out.push(Loaded {
                seq: r.get(7)?,
                trial,
            });
        }
    }
    if out.is_empty() {
        return Ok(out);
    }
    {
        let mut stmt = tx.prepare_cached(queries[1])?;
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let name = text(r.get_ref(1)?)?;
            let internal: f64 = r.get(2)?;
            let param = specs.param(name, text(r.get_ref(3)?)?, internal)?;
            out[i].trial.params.insert(param);
        }
    }
    {
        let mut stmt = tx.prepare_cached(queries[2])?;
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let step = u64_of(r.get(1)?)?;
            let values = decode_values(text(r.get_ref(2)?)?)?;
            out[i].trial.intermediate_values.insert(step, values);
        }
    }
    {
        let mut stmt = tx.prepare_cached(queries[3])?;
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let system: i64 = r.get(1)?;
            let key: String = r.get(2)?;
            let value: Value = serde_json::from_str(text(r.get_ref(3)?)?)?;
            let t = &mut out[i].trial;
            if system != 0 {
                t.system_attrs.insert(key, value);
            } else {
                t.user_attrs.insert(key, value);
            }
        }
    }
    Ok(out)
}

/// Parameter names and distributions already read, so that trials read later share them (one
/// allocation per name and distribution, as in memory) and their JSON is parsed once.
#[derive(Default)]
struct SpecCache {
    by_name: HashMap<String, Vec<(String, Param)>>,
    len: usize,
}

/// Distinct (name, distribution) pairs kept at most; more still work, unshared.
const MAX_SPECS: usize = 4096;

impl SpecCache {
    fn param(&mut self, name: &str, distribution_json: &str, internal: f64) -> Res<Param> {
        if let Some(known) = self.by_name.get(name) {
            if let Some((_, p)) = known.iter().find(|(json, _)| json == distribution_json) {
                return Ok(p.with_internal(internal)?);
            }
        }
        let distribution: Distribution = serde_json::from_str(distribution_json)?;
        let param = Param::from_internal(name, distribution, internal)?;
        if self.len < MAX_SPECS {
            self.by_name
                .entry(name.to_owned())
                .or_default()
                .push((distribution_json.to_owned(), param.clone()));
            self.len += 1;
        }
        Ok(param)
    }
}

/// A study's trials as last read.
struct StudyCache {
    /// Every trial stamped with a sequence number up to this one is reflected in `trials`.
    seq: i64,
    /// By number (numbers are dense).
    trials: Vec<Cached>,
    /// How many of `trials` are Running (their unstamped writes are re-read every time).
    running: usize,
}

struct Cached {
    seq: i64,
    trial: Arc<FrozenTrial>,
}

impl StudyCache {
    fn empty() -> Self {
        StudyCache {
            seq: -1,
            trials: Vec::new(),
            running: 0,
        }
    }

    /// Puts a trial read from the database in its place; errors when numbers are not dense.
    fn put(&mut self, cached: Cached) -> std::result::Result<(), usize> {
        let n = usize::try_from(cached.trial.number).unwrap_or(usize::MAX);
        if cached.trial.state == TrialState::Running {
            self.running += 1;
        }
        if n < self.trials.len() {
            let old = std::mem::replace(&mut self.trials[n], cached);
            if old.trial.state == TrialState::Running {
                self.running -= 1;
            }
        } else if n == self.trials.len() {
            self.trials.push(cached);
        } else {
            return Err(self.trials.len());
        }
        Ok(())
    }
}

impl Inner {
    /// Brings a study's cached trials up to date, reading only the trials stamped since the
    /// last read and the Running ones: nothing at all when no trial is Running and the
    /// study's sequence number has not moved.
    fn refresh(&mut self, study: StudyId, loaded: &AtomicU64) -> Res<&StudyCache> {
        let id = sid(study)?;
        let (since, running) = self
            .cache
            .get(&study)
            .map_or((-1, 0), |c| (c.seq, c.running));
        let Inner {
            conn,
            timeout,
            specs,
            ..
        } = self;
        let fetched = read(conn, *timeout, |tx| {
            let seq: Option<i64> = tx
                .prepare_cached(
                    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM trials WHERE study_id = ?1) \
                     FROM studies WHERE study_id = ?1",
                )?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(seq) = seq else {
                return Ok(None);
            };
            if seq == since && running == 0 {
                return Ok(Some((seq, false, Vec::new())));
            }
            // A sequence number that went back means the study is not the one cached (the
            // file was replaced): read it whole.
            let reset = seq < since;
            let from = if reset { -1 } else { since };
            let changed = load_trials(tx, specs, &CHANGED_SINCE, params![id, from])?;
            Ok(Some((seq, reset, changed)))
        })?;
        let Some((seq, reset, changed)) = fetched else {
            self.cache.remove(&study);
            return Err(study_not_found(study));
        };
        loaded.fetch_add(changed.len() as u64, Ordering::Relaxed);
        if reset {
            self.cache.remove(&study);
        }
        let entry = self.cache.entry(study).or_insert_with(StudyCache::empty);
        for l in changed {
            let n = l.trial.number;
            let put = entry.put(Cached {
                seq: l.seq,
                trial: Arc::new(l.trial),
            });
            if let Err(missing) = put {
                // Forget the study, so that the next read starts over.
                *entry = StudyCache::empty();
                return Err(bad_data(format!(
                    "study id {id} has trial #{n} but no trial #{missing}"
                )));
            }
        }
        entry.seq = seq;
        Ok(entry)
    }
}

// ---------------------------------------------------------------------------------------------
// The trait

impl Storage for SqliteStorage {
    fn create_study(
        &self,
        name: &str,
        directions: &[Direction],
        system_attrs: &BTreeMap<String, Value>,
    ) -> Result<StudyId> {
        let directions = serde_json::to_string(directions)?;
        let attrs: Vec<(&String, String)> = system_attrs
            .iter()
            .map(|(k, v)| Ok((k, to_json(v)?)))
            .collect::<Res<_>>()
            .map_err(|e| e.into_error(&self.db, self.config.busy_timeout))?;
        self.with(|inner| {
            write(&mut inner.conn, inner.timeout, |tx| {
                let taken = tx
                    .prepare_cached("SELECT 1 FROM studies WHERE name = ?1")?
                    .query_row([name], |_| Ok(()))
                    .optional()?;
                if taken.is_some() {
                    return Err(Error::DuplicateStudy(name.to_owned()).into());
                }
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO studies (name, directions_json, created) \
                         VALUES (?1, ?2, unixepoch('subsec')) RETURNING study_id",
                    )?
                    .query_row(params![name, directions], |r| r.get(0))?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO study_attrs (study_id, system, key, value_json) \
                     VALUES (?1, 1, ?2, ?3)",
                )?;
                for (key, value) in &attrs {
                    insert.execute(params![id, key, value])?;
                }
                Ok(StudyId(u64_of(id)?))
            })
        })
    }

    fn study_by_name(&self, name: &str) -> Result<FrozenStudy> {
        self.with(|inner| {
            read(&mut inner.conn, inner.timeout, |tx| {
                load_studies(tx, "WHERE name = ?1", &[&name])
            })?
            .pop()
            .ok_or_else(|| Error::StudyNotFound(name.to_owned()).into())
        })
    }

    fn study(&self, id: StudyId) -> Result<FrozenStudy> {
        self.with(|inner| {
            let key = sid(id)?;
            read(&mut inner.conn, inner.timeout, |tx| {
                load_studies(tx, "WHERE study_id = ?1", &[&key])
            })?
            .pop()
            .ok_or_else(|| study_not_found(id))
        })
    }

    fn studies(&self) -> Result<Vec<FrozenStudy>> {
        self.with(|inner| {
            read(&mut inner.conn, inner.timeout, |tx| {
                load_studies(tx, "", &[])
            })
        })
    }

    fn delete_study(&self, id: StudyId) -> Result<()> {
        self.with(|inner| {
            let key = sid(id)?;
            let deleted = write(&mut inner.conn, inner.timeout, |tx| {
                Ok(tx
                    .prepare_cached("DELETE FROM studies WHERE study_id = ?1")?
                    .execute([key])?)
            })?;
            inner.cache.remove(&id);
            if deleted == 0 {
                return Err(study_not_found(id));
            }
            Ok(())
        })
    }

    fn rename_study(&self, id: StudyId, name: &str) -> Result<()> {
        self.with(|inner| {
            let key = sid(id)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let holder: Option<i64> = tx
                    .prepare_cached("SELECT study_id FROM studies WHERE name = ?1")?
                    .query_row([name], |r| r.get(0))
                    .optional()?;
                if holder.is_some_and(|h| h != key) {
                    return Err(Error::DuplicateStudy(name.to_owned()).into());
                }
                let changed = tx
                    .prepare_cached("UPDATE studies SET name = ?2 WHERE study_id = ?1")?
                    .execute(params![key, name])?;
                if changed == 0 {
                    return Err(study_not_found(id));
                }
                Ok(())
            })
        })
    }

    fn set_study_user_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        self.set_study_attr(id, false, key, value)
    }

    fn set_study_system_attr(&self, id: StudyId, key: &str, value: &Value) -> Result<()> {
        self.set_study_attr(id, true, key, value)
    }

    fn set_study_system_attr_if_absent(
        &self,
        id: StudyId,
        key: &str,
        value: &Value,
    ) -> Result<Value> {
        let json = serde_json::to_string(value)?;
        self.with(|inner| {
            let study = sid(id)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                if !study_exists(tx, study)? {
                    return Err(study_not_found(id));
                }
                tx.prepare_cached(
                    "INSERT INTO study_attrs (study_id, system, key, value_json) \
                     VALUES (?1, 1, ?2, ?3) ON CONFLICT (study_id, system, key) DO NOTHING",
                )?
                .execute(params![study, key, json])?;
                let stored: String = tx
                    .prepare_cached(
                        "SELECT value_json FROM study_attrs \
                         WHERE study_id = ?1 AND system = 1 AND key = ?2",
                    )?
                    .query_row(params![study, key], |r| r.get(0))?;
                Ok(if stored == json {
                    value.clone()
                } else {
                    serde_json::from_str(&stored)?
                })
            })
        })
    }

    fn compare_and_set_study_system_attr(
        &self,
        id: StudyId,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<bool> {
        let expected_json = expected.map(serde_json::to_string).transpose()?;
        let json = serde_json::to_string(new)?;
        self.with(|inner| {
            let study = sid(id)?;
            // The write transaction holds the database's write lock from its start, so the
            // value compared is still the stored one when it is replaced.
            write(&mut inner.conn, inner.timeout, |tx| {
                if !study_exists(tx, study)? {
                    return Err(study_not_found(id));
                }
                let stored: Option<String> = tx
                    .prepare_cached(
                        "SELECT value_json FROM study_attrs \
                         WHERE study_id = ?1 AND system = 1 AND key = ?2",
                    )?
                    .query_row(params![study, key], |r| r.get(0))
                    .optional()?;
                let matches = match (&stored, expected, &expected_json) {
                    (None, None, _) => true,
                    // The same text is the same value; other text may still be (`-0.0`
                    // and `0.0`), so it is compared as JSON.
                    (Some(stored), Some(e), Some(e_json)) => {
                        stored == e_json || serde_json::from_str::<Value>(stored)? == *e
                    }
                    _ => false,
                };
                if !matches {
                    return Ok(false);
                }
                tx.prepare_cached(
                    "INSERT INTO study_attrs (study_id, system, key, value_json) \
                     VALUES (?1, 1, ?2, ?3) ON CONFLICT (study_id, system, key) DO UPDATE \
                     SET value_json = excluded.value_json",
                )?
                .execute(params![study, key, json])?;
                Ok(true)
            })
        })
    }

    fn study_system_attr(&self, id: StudyId, key: &str) -> Result<Option<Value>> {
        self.with(|inner| {
            let study = sid(id)?;
            let stored: Option<Option<String>> = read(&mut inner.conn, inner.timeout, |tx| {
                Ok(tx
                    .prepare_cached(
                        "SELECT (SELECT value_json FROM study_attrs \
                         WHERE study_id = ?1 AND system = 1 AND key = ?2) \
                         FROM studies WHERE study_id = ?1",
                    )?
                    .query_row(params![study, key], |r| r.get(0))
                    .optional()?)
            })?;
            match stored {
                None => Err(study_not_found(id)),
                Some(None) => Ok(None),
                Some(Some(json)) => Ok(Some(serde_json::from_str(&json)?)),
            }
        })
    }

    fn create_trial(&self, study: StudyId, max_trials: Option<u64>) -> Result<Option<FrozenTrial>> {
        self.with(|inner| {
            let id = sid(study)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let number = next_number(tx, id)?.ok_or_else(|| study_not_found(study))?;
                if max_trials.is_some_and(|max| u64_of(number).is_ok_and(|n| n >= max)) {
                    return Ok(None);
                }
                let seq = next_seq(tx, id)?;
                let (trial, start): (i64, f64) = tx
                    .prepare_cached(
                        "INSERT INTO trials (study_id, number, state, datetime_start, seq) \
                         VALUES (?1, ?2, 'running', unixepoch('subsec'), ?3) \
                         RETURNING trial_id, datetime_start",
                    )?
                    .query_row(params![id, number, seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let mut t = FrozenTrial::new_running(TrialId(u64_of(trial)?), u64_of(number)?);
                t.datetime_start = from_secs(start);
                Ok(Some(t))
            })
        })
    }

    fn add_trial(&self, study: StudyId, template: &FrozenTrial) -> Result<FrozenTrial> {
        let encode = || -> Res<_> {
            let params: Vec<(&str, f64, String)> = template
                .params
                .as_slice()
                .iter()
                .map(|p| {
                    Ok((
                        p.name(),
                        p.internal()?,
                        serde_json::to_string(p.distribution())?,
                    ))
                })
                .collect::<Res<_>>()?;
            let intermediates: Vec<(i64, String)> = template
                .intermediate_values
                .iter()
                .map(|(step, v)| Ok((step_i64(*step)?, encode_values(v))))
                .collect::<Res<_>>()?;
            let attrs: Vec<(i64, &String, String)> = template
                .user_attrs
                .iter()
                .map(|(k, v)| (0, k, v))
                .chain(template.system_attrs.iter().map(|(k, v)| (1, k, v)))
                .map(|(s, k, v)| Ok((s, k, to_json(v)?)))
                .collect::<Res<_>>()?;
            Ok((params, intermediates, attrs))
        };
        let values = template.values.as_deref().map(encode_values);
        self.with(|inner| {
            let (params_rows, intermediates, attrs) = encode()?;
            let id = sid(study)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let number = next_number(tx, id)?.ok_or_else(|| study_not_found(study))?;
                let seq = next_seq(tx, id)?;
                let trial: i64 = tx
                    .prepare_cached(
                        "INSERT INTO trials (study_id, number, state, values_json, \
                         datetime_start, datetime_complete, fail_reason, seq) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING trial_id",
                    )?
                    .query_row(
                        params![
                            id,
                            number,
                            template.state.as_str(),
                            values,
                            template.datetime_start.map(to_secs),
                            template.datetime_complete.map(to_secs),
                            template.fail_reason,
                            seq
                        ],
                        |r| r.get(0),
                    )?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO trial_params (trial_id, name, internal, distribution_json) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (name, internal, json) in &params_rows {
                    insert.execute(params![trial, name, internal, json])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO trial_intermediate_values (trial_id, step, values_json) \
                     VALUES (?1, ?2, ?3)",
                )?;
                for (step, json) in &intermediates {
                    insert.execute(params![trial, step, json])?;
                }
                let mut insert = tx.prepare_cached(
                    "INSERT INTO trial_attrs (trial_id, system, key, value_json) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (system, key, json) in &attrs {
                    insert.execute(params![trial, system, key, json])?;
                }
                let mut stored = template.clone();
                stored.id = TrialId(u64_of(trial)?);
                stored.number = u64_of(number)?;
                Ok(stored)
            })
        })
    }

    fn set_trial_param(&self, trial: TrialId, param: &Param) -> Result<()> {
        let internal = param.internal()?;
        let json = serde_json::to_string(param.distribution())?;
        self.with(|inner| {
            write(&mut inner.conn, inner.timeout, |tx| {
                let (study, id, state) = live_trial(tx, trial)?;
                let existing: Option<String> = tx
                    .prepare_cached(
                        "SELECT distribution_json FROM trial_params \
                         WHERE trial_id = ?1 AND name = ?2",
                    )?
                    .query_row(params![id, param.name()], |r| r.get(0))
                    .optional()?;
                if let Some(existing) = existing.filter(|e| *e != json) {
                    let first: Distribution = serde_json::from_str(&existing)?;
                    if first != *param.distribution() {
                        return Err(Error::IncompatibleDistribution {
                            name: param.name().to_owned(),
                            first: first.to_string(),
                            second: param.distribution().to_string(),
                        }
                        .into());
                    }
                }
                tx.prepare_cached(
                    "INSERT INTO trial_params (trial_id, name, internal, distribution_json) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (trial_id, name) DO UPDATE \
                     SET internal = excluded.internal, distribution_json = excluded.distribution_json",
                )?
                .execute(params![id, param.name(), internal, json])?;
                touch(tx, study, id, state)
            })
        })
    }

    fn set_trial_intermediate_value(
        &self,
        trial: TrialId,
        step: u64,
        values: &[f64],
    ) -> Result<()> {
        let json = encode_values(values);
        self.with(|inner| {
            let step = step_i64(step)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let (study, id, state) = live_trial(tx, trial)?;
                tx.prepare_cached(
                    "INSERT INTO trial_intermediate_values (trial_id, step, values_json) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (trial_id, step) DO UPDATE \
                     SET values_json = excluded.values_json",
                )?
                .execute(params![id, step, json])?;
                touch(tx, study, id, state)
            })
        })
    }

    fn set_trial_user_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        self.set_trial_attr(trial, false, key, value)
    }

    fn set_trial_system_attr(&self, trial: TrialId, key: &str, value: &Value) -> Result<()> {
        self.set_trial_attr(trial, true, key, value)
    }

    fn set_trial_state(
        &self,
        trial: TrialId,
        expected: TrialState,
        new: TrialState,
        values: Option<&[f64]>,
        fail_reason: Option<&str>,
    ) -> Result<bool> {
        let values = values.map(encode_values);
        self.with(|inner| {
            let id = tid(trial)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let (study, number, current) =
                    trial_row(tx, id)?.ok_or_else(|| trial_not_found(trial))?;
                if current != expected {
                    return Ok(false);
                }
                if current.is_finished() {
                    return Err(Error::TrialFinished {
                        number,
                        state: current,
                    }
                    .into());
                }
                let seq = next_seq(tx, study)?;
                tx.prepare_cached(
                    "UPDATE trials SET state = ?2, \
                     values_json = COALESCE(?3, values_json), \
                     fail_reason = COALESCE(?4, fail_reason), \
                     datetime_start = CASE WHEN ?5 THEN unixepoch('subsec') ELSE datetime_start END, \
                     datetime_complete = CASE WHEN ?6 THEN unixepoch('subsec') ELSE datetime_complete END, \
                     heartbeat = NULL, seq = ?7 \
                     WHERE trial_id = ?1",
                )?
                .execute(params![
                    id,
                    new.as_str(),
                    values,
                    fail_reason,
                    new == TrialState::Running,
                    new.is_finished(),
                    seq
                ])?;
                Ok(true)
            })
        })
    }

    fn record_heartbeat(&self, trial: TrialId) -> Result<()> {
        self.with(|inner| {
            let id = tid(trial)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                let beat = tx
                    .prepare_cached(
                        "UPDATE trials SET heartbeat = unixepoch('subsec') \
                         WHERE trial_id = ?1 AND state = 'running'",
                    )?
                    .execute([id])?;
                if beat == 1 {
                    return Ok(());
                }
                match trial_row(tx, id)? {
                    None => Err(trial_not_found(trial)),
                    Some((_, number, state)) => Err(Error::TrialFinished { number, state }.into()),
                }
            })
        })
    }

    fn stale_trials(&self, study: StudyId, grace: Duration) -> Result<Vec<TrialId>> {
        self.with(|inner| {
            let id = sid(study)?;
            read(&mut inner.conn, inner.timeout, |tx| {
                if !study_exists(tx, id)? {
                    return Err(study_not_found(study));
                }
                let mut stmt = tx.prepare_cached(
                    "SELECT trial_id FROM trials WHERE study_id = ?1 AND state = 'running' \
                     AND heartbeat IS NOT NULL AND heartbeat < unixepoch('subsec') - ?2 \
                     ORDER BY trial_id",
                )?;
                let ids = stmt
                    .query_map(params![id, grace.as_secs_f64()], |r| r.get::<_, i64>(0))?
                    .map(|r| Ok(TrialId(u64_of(r?)?)))
                    .collect::<Res<Vec<_>>>()?;
                Ok(ids)
            })
        })
    }

    fn trial(&self, trial: TrialId) -> Result<Arc<FrozenTrial>> {
        self.with(|inner| {
            let id = tid(trial)?;
            let Inner {
                conn,
                timeout,
                cache,
                specs,
            } = inner;
            let (found, loaded) = read(conn, *timeout, |tx| {
                let row: Option<(i64, i64, i64)> = tx
                    .prepare_cached("SELECT study_id, number, seq FROM trials WHERE trial_id = ?1")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let (study, number, seq) = row.ok_or_else(|| trial_not_found(trial))?;
                let cached = cache
                    .get(&StudyId(u64_of(study)?))
                    .and_then(|c| c.trials.get(usize::try_from(number).ok()?))
                    // A Running trial's writes are not stamped: only finished ones are served
                    // from the cache (they never change).
                    .filter(|c| c.seq == seq && c.trial.id == trial && c.trial.state.is_finished());
                if let Some(c) = cached {
                    return Ok((c.trial.clone(), false));
                }
                let t = load_trials(tx, specs, &ONE_TRIAL, params![id])?
                    .pop()
                    .ok_or_else(|| trial_not_found(trial))?;
                Ok((Arc::new(t.trial), true))
            })?;
            if loaded {
                self.trials_loaded.fetch_add(1, Ordering::Relaxed);
            }
            Ok(found)
        })
    }

    fn trials(
        &self,
        study: StudyId,
        states: Option<&[TrialState]>,
    ) -> Result<Vec<Arc<FrozenTrial>>> {
        self.with(|inner| {
            let cache = inner.refresh(study, &self.trials_loaded)?;
            Ok(match states {
                None => cache.trials.iter().map(|c| c.trial.clone()).collect(),
                Some(states) => cache
                    .trials
                    .iter()
                    .filter(|c| states.contains(&c.trial.state))
                    .map(|c| c.trial.clone())
                    .collect(),
            })
        })
    }

    fn n_trials(&self, study: StudyId, states: Option<&[TrialState]>) -> Result<u64> {
        self.with(|inner| {
            let id = sid(study)?;
            read(&mut inner.conn, inner.timeout, |tx| {
                let total = next_number(tx, id)?.ok_or_else(|| study_not_found(study))?;
                let Some(states) = states else {
                    return u64_of(total);
                };
                let mut count = 0;
                let mut stmt = tx.prepare_cached(
                    "SELECT COUNT(*) FROM trials WHERE study_id = ?1 AND state = ?2",
                )?;
                for (i, state) in states.iter().enumerate() {
                    if states[..i].contains(state) {
                        continue;
                    }
                    let n: i64 = stmt.query_row(params![id, state.as_str()], |r| r.get(0))?;
                    count += u64_of(n)?;
                }
                Ok(count)
            })
        })
    }

    fn claim_waiting_trial(&self, study: StudyId) -> Result<Option<Arc<FrozenTrial>>> {
        const FIRST_WAITING: &str = "SELECT trial_id FROM trials WHERE study_id = ?1 \
                                     AND state = 'waiting' ORDER BY number LIMIT 1";
        self.with(|inner| {
            let id = sid(study)?;
            // Asked before every trial: a plain read first, so that a study without queued
            // trials never takes the write lock here.
            let waiting: Option<Option<i64>> = read(&mut inner.conn, inner.timeout, |tx| {
                Ok(tx
                    .prepare_cached(&format!(
                        "SELECT ({FIRST_WAITING}) FROM studies WHERE study_id = ?1"
                    ))?
                    .query_row([id], |r| r.get(0))
                    .optional()?)
            })?;
            match waiting {
                None => return Err(study_not_found(study)),
                Some(None) => return Ok(None),
                Some(Some(_)) => {}
            }
            let Inner {
                conn,
                timeout,
                specs,
                ..
            } = inner;
            let claimed = write(conn, *timeout, |tx| {
                let Some(trial) = tx
                    .prepare_cached(FIRST_WAITING)?
                    .query_row([id], |r| r.get::<_, i64>(0))
                    .optional()?
                else {
                    return Ok(None);
                };
                let seq = next_seq(tx, id)?;
                tx.prepare_cached(
                    "UPDATE trials SET state = 'running', datetime_start = unixepoch('subsec'), \
                     heartbeat = NULL, seq = ?2 WHERE trial_id = ?1",
                )?
                .execute(params![trial, seq])?;
                Ok(load_trials(tx, specs, &ONE_TRIAL, params![trial])?.pop())
            })?;
            Ok(claimed.map(|l| Arc::new(l.trial)))
        })
    }
}

impl SqliteStorage {
    fn set_study_attr(&self, id: StudyId, system: bool, key: &str, value: &Value) -> Result<()> {
        let json = serde_json::to_string(value)?;
        self.with(|inner| {
            let study = sid(id)?;
            write(&mut inner.conn, inner.timeout, |tx| {
                if !study_exists(tx, study)? {
                    return Err(study_not_found(id));
                }
                tx.prepare_cached(
                    "INSERT INTO study_attrs (study_id, system, key, value_json) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (study_id, system, key) DO UPDATE \
                     SET value_json = excluded.value_json",
                )?
                .execute(params![study, system, key, json])?;
                Ok(())
            })
        })
    }

    fn set_trial_attr(&self, trial: TrialId, system: bool, key: &str, value: &Value) -> Result<()> {
        let json = serde_json::to_string(value)?;
        self.with(|inner| {
            write(&mut inner.conn, inner.timeout, |tx| {
                let (study, id, state) = live_trial(tx, trial)?;
                tx.prepare_cached(
                    "INSERT INTO trial_attrs (trial_id, system, key, value_json) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (trial_id, system, key) DO UPDATE \
                     SET value_json = excluded.value_json",
                )?
                .execute(params![id, system, key, json])?;
                touch(tx, study, id, state)
            })
        })
    }
}

/// `SqliteStorage` is shared between threads (the trait requires it; this fails to compile
/// otherwise).
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<SqliteStorage>();
};
