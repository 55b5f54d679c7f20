//! One trial's process: spawning it in a process group of its own, capturing its output into
//! log files (and report lines into events), stopping it, and telling when it has exited.
//!
//! # Process groups
//! The program is started as the leader of a new process group (`process_group(0)`), so that
//! everything it starts (a shell's children, data-loader workers) can be signalled at once with
//! `killpg`, and so that a Ctrl-C in the terminal reaches only the runner, which then stops the
//! trials itself. Stopping is SIGTERM to the group, then SIGKILL to the group after a grace
//! period. When the program exits on its own, whatever it left running in its group is killed
//! (SIGKILL) before the exit is collected: on Linux the exit is observed with
//! `waitid(WNOWAIT)`, so the not-yet-reaped leader keeps the group id from being reused while
//! the group is signalled.
//!
//! # Output
//! Two threads read stdout and stderr line by line. Every line goes, byte for byte, to
//! `stdout.log` / `stderr.log`; report lines of stdout (see [`protocol`](super::protocol))
//! also become [`Event`]s; the last [`TAIL_LINES`] lines of stderr are kept for the failure
//! record. With `--tee` each line is also shown by the runner.
//!
//! # Freezing on a step
//! With [`Launch::freeze_on_step`] (a scheduled study) the stdout reader stops the process
//! group (SIGSTOP) the moment it reads a step's report line, before passing it on, so that
//! the program cannot move on while the runner asks the scheduler and copies the state the
//! program saved for that step; the runner continues it ([`Process::signal`] with SIGCONT)
//! once it has handled the line. (A group left stopped by a runner that died is orphaned:
//! the kernel sends it SIGHUP and SIGCONT.)

use super::protocol::{self, Report, ReportError};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many lines of stderr are kept for a failed trial's record.
pub const TAIL_LINES: usize = 50;
/// Longest line kept in the tail (longer ones are cut, with a marker).
const TAIL_LINE_CHARS: usize = 2000;

/// Which output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Called with every output line when `--tee` is on.
pub type Tee = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// What to run, and where its output goes.
pub struct Launch {
    /// The program and its arguments (already rendered).
    pub argv: Vec<String>,
    /// Variables set for the program.
    pub env: Vec<(String, String)>,
    /// Inherited variables removed first.
    pub env_remove: Vec<String>,
    /// The working directory (`None`: the runner's).
    pub cwd: Option<PathBuf>,
    /// Where stdout is logged.
    pub stdout_log: PathBuf,
    /// Where stderr is logged.
    pub stderr_log: PathBuf,
    /// Append to the logs (a resumed trial's next run) instead of starting them anew.
    pub append: bool,
    /// Stop the process group as soon as a step's report line is read (see the module docs).
    pub freeze_on_step: bool,
    /// Shows output lines live (`--tee`).
    pub tee: Option<Tee>,
}

/// Something the output readers saw.
#[derive(Debug)]
pub enum Event {
    /// A valid report line.
    Report(Report),
    /// A line starting with the prefix that is not a valid report.
    Malformed {
        /// The line.
        line: String,
        /// Why.
        error: ReportError,
    },
    /// One of the two streams reached its end (the program and everything holding it closed
    /// it).
    Closed,
}

/// The end of stderr, shared with its reader.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    /// Report lines written to stderr by mistake.
    misplaced_reports: usize,
}

/// A running (or exited, not yet dropped) trial process.
pub struct Process {
    child: Child,
    pgid: Pid,
    events: Receiver<Event>,
    /// Events already taken from `events` (to look ahead) but not handed out yet.
    backlog: VecDeque<Event>,
    open_streams: usize,
    tail: Arc<Mutex<Tail>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// When it was started.
    pub started: Instant,
}

impl Process {
    /// Starts the program in a new process group with stdin closed and its output captured.
    pub fn spawn(launch: Launch) -> std::io::Result<Process> {
        let (program, args) = launch
            .argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        let open = |path: &PathBuf| {
            let file = if launch.append {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            } else {
                File::create(path)
            };
            file.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
            })
        };
        let stdout_log = open(&launch.stdout_log)?;
        let stderr_log = open(&launch.stderr_log)?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for var in &launch.env_remove {
            cmd.env_remove(var);
        }
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &launch.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn()?;
        let started = Instant::now();
        let pid = i32::try_from(child.id()).map_err(std::io::Error::other)?;
        let (tx, events) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Tail::default()));
        let mut readers = Vec::with_capacity(2);
        if let Some(out) = child.stdout.take() {
            let (tx, tee) = (tx.clone(), launch.tee.clone());
            let freeze = launch.freeze_on_step.then_some(Pid::from_raw(pid));
            readers.push(reader_thread("stdout", move || {
                read_stdout(out, stdout_log, &tx, tee.as_ref(), freeze);
            })?);
        }
        if let Some(err) = child.stderr.take() {
            let (tx, tee, tail) = (tx.clone(), launch.tee.clone(), tail.clone());
            readers.push(reader_thread("stderr", move || {
                read_stderr(err, stderr_log, &tx, tee.as_ref(), &tail);
            })?);
        }
        Ok(Process {
            child,
            pgid: Pid::from_raw(pid),
            events,
            backlog: VecDeque::new(),
            open_streams: readers.len(),
            tail,
            readers,
            status: None,
            started,
        })
    }

    /// The program's process id (also its process group's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next event, waiting at most `timeout`; `None` when there was none. Once both
    /// streams are closed this sleeps for the timeout instead of spinning.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(e) = self.backlog.pop_front() {
            if matches!(e, Event::Closed) {
                self.open_streams = self.open_streams.saturating_sub(1);
            }
            return Some(e);
        }
        if self.open_streams == 0 {
            // Drain what is left, then wait without an event source.
            if let Ok(e) = self.events.try_recv() {
                return Some(e);
            }
            std::thread::sleep(timeout);
            return None;
        }
        match self.events.recv_timeout(timeout) {
            Ok(e) => {
                if matches!(e, Event::Closed) {
                    self.open_streams = self.open_streams.saturating_sub(1);
                }
                Some(e)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.open_streams = 0;
                None
            }
        }
    }

    /// The highest step among the report lines already read from the program but not handed
    /// out yet: when it is above the step being handled, the program has moved on.
    pub fn queued_step(&mut self) -> Option<u64> {
        while let Ok(e) = self.events.try_recv() {
            self.backlog.push_back(e);
        }
        self.backlog
            .iter()
            .filter_map(|e| match e {
                Event::Report(r) => r.step,
                _ => None,
            })
            .max()
    }

    /// Whether both output streams have ended.
    pub fn output_closed(&self) -> bool {
        self.open_streams == 0
    }

    /// Sends a signal to the whole process group (a group that is already gone is fine).
    pub fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => tracing::warn!("cannot send {signal} to process group {}: {e}", self.pgid),
        }
    }

    /// The exit status once the program has exited (without blocking); anything it left
    /// running in its process group is killed first.
    pub fn try_exit(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        if !self.exited_unreaped()? {
            return Ok(None);
        }
        // The leader is a zombie, so the group id cannot be reused: kill the leftovers.
        self.signal(Signal::SIGKILL);
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(Some(status))
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn exited_unreaped(&mut self) -> std::io::Result<bool> {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pgid), flags) {
            Ok(WaitStatus::StillAlive) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(std::io::Error::from(e)),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    fn exited_unreaped(&mut self) -> std::io::Result<bool> {
        // Without waitid, reap at once; the group is then signalled right after (a pid is
        // not reused within microseconds).
        match self.child.try_wait()? {
            Some(status) => {
                self.status = Some(status);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// After the exit: waits up to `within` for the readers to reach the end of both streams
    /// (so the last report lines are not lost), and returns the events they still had.
    pub fn finish_output(&mut self, within: Duration) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut events = Vec::new();
        while self.open_streams > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "trial process {}: its output stayed open after it exited (a process \
                     outside its group holds it); the rest is not read",
                    self.pgid
                );
                break;
            }
            if let Some(e) = self.next_event(left) {
                events.push(e);
            }
        }
        events.extend(self.backlog.drain(..));
        while let Ok(e) = self.events.try_recv() {
            events.push(e);
        }
        if self.open_streams == 0 {
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
        }
        events
    }

    /// The last lines of stderr, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.lines.iter().cloned().collect()
    }

    /// How many report lines went to stderr instead of stdout.
    pub fn misplaced_reports(&self) -> usize {
        self.tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .misplaced_reports
    }
}

impl Drop for Process {
    /// A process dropped before its exit was collected (an error in the runner) is killed
    /// with its group and reaped, so no trial outlives the runner's interest in it.
    fn drop(&mut self) {
        if self.status.is_none() {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// How a process ended, in words: `exit status 1`, `killed by signal 11 (SIGSEGV)`.
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {sig} ({})", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => status.to_string(),
    }
}

fn reader_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ferrotune-trial-{name}"))
        .spawn(body)
}

/// Reads lines (bytes up to and including `\n`) until the end, calling `each` with the raw
/// bytes; returns when the stream ends or fails.
fn for_each_line(source: impl Read, mut each: impl FnMut(&[u8])) {
    let mut reader = BufReader::with_capacity(64 * 1024, source);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => each(&buf),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn text_of(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    String::from_utf8_lossy(raw)
}

/// Reads one of the program's streams to its end: each line goes to `log` as it came (until a
/// write fails) and to `tee`, then its text to `each`; `Closed` is sent at the end.
fn read_stream(
    source: impl Read,
    stream: Stream,
    mut log: File,
    tx: &Sender<Event>,
    tee: Option<&Tee>,
    mut each: impl FnMut(std::borrow::Cow<'_, str>),
) {
    let mut log_ok = true;
    for_each_line(source, |raw| {
        if log_ok && log.write_all(raw).is_err() {
            log_ok = false;
        }
        let text = text_of(raw);
        if let Some(tee) = tee {
            tee(stream, &text);
        }
        each(text);
    });
    let _ = tx.send(Event::Closed);
}

/// `freeze`: the process group to stop when a step's report line is read.
fn read_stdout(
    source: impl Read,
    log: File,
    tx: &Sender<Event>,
    tee: Option<&Tee>,
    freeze: Option<Pid>,
) {
    read_stream(source, Stream::Stdout, log, tx, tee, |text| {
        if let Some(parsed) = protocol::parse_line(&text) {
            let event = match parsed {
                Ok(report) => {
                    if let (Some(group), Some(_)) = (freeze, report.step) {
                        // A group that is gone already is fine.
                        let _ = killpg(group, Signal::SIGSTOP);
                    }
                    Event::Report(report)
                }
                Err(error) => Event::Malformed {
                    line: text.into_owned(),
                    error,
                },
            };
            let _ = tx.send(event);
        }
    });
}

fn read_stderr(
    source: impl Read,
    log: File,
    tx: &Sender<Event>,
    tee: Option<&Tee>,
    tail: &Mutex<Tail>,
) {
    read_stream(source, Stream::Stderr, log, tx, tee, |text| {
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if text.starts_with(protocol::PREFIX) {
            tail.misplaced_reports += 1;
        }
        // A progress bar redraws with `\r`: keep what the terminal would show last.
        let shown = text.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
        let line = if shown.chars().count() > TAIL_LINE_CHARS {
            let cut: String = shown.chars().take(TAIL_LINE_CHARS).collect();
            format!("{cut}… (line cut)")
        } else {
            shown.to_owned()
        };
        if tail.lines.len() == TAIL_LINES {
            tail.lines.pop_front();
        }
        tail.lines.push_back(line);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(dir: &std::path::Path, script: &str) -> Launch {
        Launch {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hi".into())],
            env_remove: vec![],
            cwd: None,
            stdout_log: dir.join("stdout.log"),
            stderr_log: dir.join("stderr.log"),
            append: false,
            freeze_on_step: false,
            tee: None,
        }
    }

    /// A temporary directory, removed when dropped.
    struct TmpDir(PathBuf);

    impl std::ops::Deref for TmpDir {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmp(name: &str) -> TmpDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d = std::env::temp_dir().join(format!(
            "ferrotune-child-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }

    /// Waits for the exit; returns the status and every event, output drained.
    fn wait_exit(p: &mut Process) -> (ExitStatus, Vec<Event>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        loop {
            if let Some(s) = p.try_exit().unwrap() {
                events.extend(p.finish_output(Duration::from_secs(5)));
                return (s, events);
            }
            assert!(Instant::now() < deadline, "process did not exit");
            events.extend(p.next_event(Duration::from_millis(10)));
        }
    }

    #[test]
    fn output_is_logged_and_reports_become_events() {
        let dir = tmp("log");
        let mut p = Process::spawn(launch(
            &dir,
            "echo \"$GREETING\"; echo 'ferrotune: step=1 loss=0.5'; echo oops >&2; \
             echo 'ferrotune: bad'; printf 'ferrotune: loss=0.25'; exit 3",
        ))
        .unwrap();
        let (status, events) = wait_exit(&mut p);
        assert_eq!(describe_status(status), "exit status 3");
        let reports: Vec<&Report> = events
            .iter()
            .filter_map(|e| match e {
                Event::Report(r) => Some(r),
                _ => None,
            })
            .collect();
        // The last line has no newline and still counts.
        assert_eq!(reports.len(), 2, "{events:?}");
        assert_eq!(reports[1].get("loss"), Some(0.25));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Malformed { line, .. } if line == "ferrotune: bad")));
        assert_eq!(p.stderr_tail(), ["oops"]);
        let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
        assert!(out.starts_with("hi\nferrotune: step=1 loss=0.5\n"), "{out}");
        assert_eq!(
            std::fs::read_to_string(dir.join("stderr.log")).unwrap(),
            "oops\n"
        );
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let dir = tmp("tail");
        let mut p = Process::spawn(launch(
            &dir,
            "i=0; while [ $i -lt 120 ]; do echo line$i >&2; i=$((i+1)); done; \
             printf 'a\\rb\\rfinal\\n' >&2; echo 'ferrotune: x=1' >&2",
        ))
        .unwrap();
        wait_exit(&mut p);
        let tail = p.stderr_tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[TAIL_LINES - 2], "final");
        assert_eq!(tail[0], format!("line{}", 120 - TAIL_LINES + 2));
        assert_eq!(p.misplaced_reports(), 1);
    }

    #[test]
    fn the_whole_group_is_stopped_and_leftovers_are_killed() {
        let dir = tmp("group");
        let pidfile = dir.join("bg.pid");
        // A background child that would outlive its shell, and holds no pipe.
        let script = format!(
            "sleep 30 >/dev/null 2>&1 & echo $! > {}; exit 0",
            pidfile.display()
        );
        let mut p = Process::spawn(launch(&dir, &script)).unwrap();
        let (status, _) = wait_exit(&mut p);
        assert!(status.success());
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with the group when the shell exited (it may linger as a zombie of init).
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(bg) {
            assert!(Instant::now() < deadline, "background child {bg} survived");
            std::thread::sleep(Duration::from_millis(20));
        }

        // SIGTERM reaches a process that is still running.
        let mut p = Process::spawn(launch(&dir, "sleep 30")).unwrap();
        p.signal(Signal::SIGTERM);
        let (status, _) = wait_exit(&mut p);
        assert_eq!(describe_status(status), "killed by signal 15 (SIGTERM)");
    }

    /// Running and not a zombie.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let dir = tmp("missing");
        let mut l = launch(&dir, "");
        l.argv = vec!["/nonexistent/program-xyz".into()];
        let err = Process::spawn(l).err().expect("spawn fails");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
