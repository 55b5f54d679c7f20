//! `ferrotune helper`: small client modules for programs that `ferrotune run` runs.
//!
//! `ferrotune helper python` prints `ferrotune_report.py`, a standard-library-only module
//! with `report(step=None, **metrics)` (prints report lines, see the run protocol),
//! `params()` (reads the parameters file) and, for pause and resume with a scheduler,
//! `save_checkpoint(obj)` / `load_checkpoint()` (pickle the state into
//! `FERROTUNE_CHECKPOINT_DIR` / from `FERROTUNE_RESUME_DIR`), `checkpoint_dir()`,
//! `resume_dir()`, `resume_step()` and `max_step()`; `--write DIR` saves it as
//! `DIR/ferrotune_report.py`. It is embedded in the binary, so the module always matches
//! the runner that reads its lines.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The Python helper module's source.
pub const PYTHON: &str = include_str!("helper/ferrotune_report.py");
/// The file name the Python helper is written under (so `import ferrotune_report` finds it).
pub const PYTHON_FILE: &str = "ferrotune_report.py";

/// The helpers there are.
#[derive(clap::Subcommand, Debug)]
pub enum HelperCommand {
    /// The Python module `ferrotune_report` (report(), params(), save_checkpoint(),
    /// load_checkpoint()).
    Python {
        /// Write it as DIR/ferrotune_report.py instead of printing it.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

/// `ferrotune helper …`.
pub fn run(command: &HelperCommand) -> anyhow::Result<()> {
    match command {
        HelperCommand::Python { write: None } => {
            use std::io::Write;
            std::io::stdout().lock().write_all(PYTHON.as_bytes())?;
        }
        HelperCommand::Python { write: Some(dir) } => {
            let path = write_python(dir)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// Writes the Python helper into `dir` (created if needed); returns the file's path.
pub fn write_python(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(PYTHON_FILE);
    std::fs::write(&path, PYTHON).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
