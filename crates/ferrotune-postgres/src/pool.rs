//! A small connection pool: up to `max` connections, opened on demand, each with its own
//! cache of prepared statements. A connection that broke is dropped, and the next checkout
//! opens a new one.

use crate::error::{describe, Fail, R};
use crate::tls::Connector;
use ferrotune::Error;
use postgres::error::SqlState;
use postgres::{Client, Statement};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: HashMap<&'static str, Statement>,
    last_used: Instant,
}

/// How long a pooled connection may sit idle before it is checked on checkout.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Conn {
    /// Whether the connection looks usable. The server may have closed it while it sat in
    /// the pool (a restart, `pg_terminate_backend`, an idle timeout), and the driver only
    /// notices when it next talks to it; so a connection idle for longer than
    /// [`CHECK_AFTER_IDLE`] (as between the trials of a real objective) is checked with a
    /// round trip, and a write is never sent into a dead connection.
    fn alive(&mut self) -> bool {
        !self.client.is_closed()
            && (self.last_used.elapsed() < CHECK_AFTER_IDLE
                || self.client.is_valid(CHECK_TIMEOUT).is_ok())
    }

    /// The prepared statement for `sql`, prepared on first use on this connection.
    pub(crate) fn stmt(&mut self, sql: &'static str) -> R<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

/// What a pool needs to open connections.
pub(crate) struct Target {
    pub(crate) config: postgres::Config,
    pub(crate) connector: Connector,
    pub(crate) schema: Option<String>,
    /// `host:port`, for messages.
    pub(crate) target: String,
    pub(crate) secrets: Vec<String>,
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

/// The pool.
pub(crate) struct Pool {
    pub(crate) target: Target,
    max: usize,
    state: Mutex<State>,
    available: Condvar,
}

impl Pool {
    pub(crate) fn new(target: Target, max: usize) -> Pool {
        Pool {
            target,
            max: max.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            available: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an already opened connection (the one the schema was checked on).
    pub(crate) fn put_new(&self, conn: Conn) {
        let mut state = self.lock();
        state.open += 1;
        state.idle.push(conn);
        drop(state);
        self.available.notify_one();
    }

    /// A connection, waiting for one when `max` are in use; pooled ones are checked first
    /// (see [`Conn::alive`]).
    pub(crate) fn get(&self) -> Result<Pooled<'_>, Error> {
        let mut state = self.lock();
        loop {
            if let Some(mut conn) = state.idle.pop() {
                if conn.alive() {
                    return Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    });
                }
                state.open -= 1;
                continue;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.open() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.available.notify_one();
                        Err(e)
                    }
                };
            }
            state = self
                .available
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Opens a connection, with an error that names the server and the fix.
    pub(crate) fn open(&self) -> Result<Conn, Error> {
        let t = &self.target;
        let mut client = t
            .connector
            .connect(&t.config)
            .map_err(|e| connect_error(t, &e))?;
        if let Some(schema) = &t.schema {
            client
                .execute(
                    "SELECT set_config('search_path', quote_ident($1), false)",
                    &[schema],
                )
                .map_err(|e| {
                    Error::Storage(format!(
                        "cannot set the schema on {}: {}",
                        t.target,
                        describe(&e, &t.secrets)
                    ))
                })?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
            last_used: Instant::now(),
        })
    }

    fn put_back(&self, mut conn: Conn) {
        conn.last_used = Instant::now();
        let mut state = self.lock();
        if conn.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(conn);
        }
        drop(state);
        self.available.notify_one();
    }

    /// Turns an error of a call into ferrotune's, naming the server when the connection is
    /// the problem.
    pub(crate) fn error(&self, fail: Fail) -> Error {
        match fail {
            Fail::Ferro(e) => e,
            Fail::Pg(e) => {
                let t = &self.target;
                let text = describe(&e, &t.secrets);
                if crate::error::is_connection_error(&e) {
                    Error::Storage(format!(
                        "lost the connection to PostgreSQL at {}: {text}; the next call \
                         reconnects",
                        t.target
                    ))
                } else {
                    Error::Storage(format!("PostgreSQL at {}: {text}", t.target))
                }
            }
        }
    }
}

/// A connection error in words, with what to check.
fn connect_error(t: &Target, e: &postgres::Error) -> Error {
    let text = describe(e, &t.secrets);
    let user = t.config.get_user().unwrap_or("?");
    let db = t.config.get_dbname().unwrap_or(user);
    let fix = match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            format!(
                "check the user name (`{user}`) and password in the URL, and the server's \
                 pg_hba.conf entry for this client"
            )
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            format!("create the database (`createdb -O {user} {db}`) or fix its name in the URL")
        }
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => "the server has no free connection \
             slot: raise max_connections or run fewer workers (each uses up to \
             max_connections() connections)"
            .to_owned(),
        Some(_) => "see the server's message above".to_owned(),
        None if text.contains("not valid for name") => {
            "connect with a host name the server's certificate names (listed above), or use \
             sslmode=verify-ca to check the certificate chain but not the name"
                .to_owned()
        }
        None if text.contains("certificate") || text.contains("TLS") || text.contains("tls") => {
            "the server's TLS certificate was not accepted: pass the CA that signed it with \
             ?sslrootcert=/path/ca.crt, or use sslmode=require to encrypt without checking it"
                .to_owned()
        }
        None => "check that PostgreSQL is running and accepts TCP connections on that host \
             and port (listen_addresses and port in postgresql.conf, pg_hba.conf, firewalls), \
             and that the URL is right"
            .to_owned(),
    };
    Error::Storage(format!(
        "cannot connect to PostgreSQL at {}: {text}. Fix: {fix}",
        t.target
    ))
}

/// A connection checked out of the pool; returns there when dropped.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put_back(conn);
        }
    }
}

impl Pool {
    /// Runs `f` on a pooled connection, again (up to 5 times in all) when the database
    /// aborted it for a deadlock or a serialization failure (the transaction was rolled
    /// back whole). For writes: a write that met a broken connection is not repeated, as it
    /// may have been applied.
    pub(crate) fn run<T>(&self, f: impl FnMut(&mut Conn) -> R<T>) -> Result<T, Error> {
        self.run_with(false, f)
    }

    /// Like [`run`](Self::run), for reads: also repeated once on a fresh connection when the
    /// connection broke.
    pub(crate) fn read<T>(&self, f: impl FnMut(&mut Conn) -> R<T>) -> Result<T, Error> {
        self.run_with(true, f)
    }

    fn run_with<T>(
        &self,
        idempotent: bool,
        mut f: impl FnMut(&mut Conn) -> R<T>,
    ) -> Result<T, Error> {
        let mut attempt = 0u32;
        let mut reconnected = false;
        loop {
            let mut conn = self.get()?;
            match f(&mut conn) {
                Ok(v) => return Ok(v),
                Err(Fail::Pg(e)) if attempt < 4 && crate::error::is_retryable(&e) => {
                    attempt += 1;
                    drop(conn);
                    // A short, varying pause so that the two sides of a deadlock do not meet
                    // again at once.
                    let jitter = u64::from(std::process::id() % 7) + u64::from(attempt) * 3;
                    std::thread::sleep(Duration::from_millis(jitter));
                }
                Err(Fail::Pg(e))
                    if idempotent && !reconnected && crate::error::is_connection_error(&e) =>
                {
                    // Drop the broken connection rather than return it to the pool.
                    if let Some(c) = conn.conn.take() {
                        drop(c);
                        self.lock().open -= 1;
                        self.available.notify_one();
                    }
                    reconnected = true;
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }
}
