//! `ferry sync --state FILE` (or the config's `state` key): the core's
//! [`ResumeState`](ferry_core::resume::ResumeState), read before the job and kept up to
//! date while it runs, so that a run killed mid-blob leaves the next one its upload
//! session.
//!
//! Upload sessions are written the moment they open or move on (the native transport's
//! [`UploadJournal`]), so a `SIGKILL` cannot lose one; blobs seen at the destinations
//! (the core's `blob_done` events) at most once a second, and at the end. Each write goes
//! to a temporary file renamed over the old one: a crash never leaves half a state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_core::config::Rule;
use ferry_core::progress::Event;
use ferry_core::reference::Reference;
use ferry_core::resume::ResumeState;
use ferry_core::transport::Transfer;
use ferry_native::{wall_now, UploadJournal};

/// How often blobs seen are written while the job runs.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// The state file of a running job.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: ResumeState,
    /// Each started image's destination registry and repository, by its place in the plan.
    destinations: BTreeMap<usize, (String, String)>,
    /// Changes not yet written.
    dirty: bool,
    written: Instant,
    /// The last write's failure, reported once at the end.
    failure: Option<String>,
}

impl StateFile {
    /// Reads `path` for the job of `rules` (a missing file is an empty state). A file that
    /// is not ferry's, for other rules, or stale is ignored with a warning on stderr and
    /// replaced as the job goes. Returns the state the job starts from.
    pub(crate) fn open(path: &Path, rules: &[Rule]) -> anyhow::Result<(StateFile, ResumeState)> {
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                let (state, ignored) = ResumeState::load(&bytes, rules, wall_now());
                if let Some(why) = ignored {
                    eprintln!(
                        "warning: ignoring the state file {}: {why}; this run starts afresh and replaces it",
                        path.display()
                    );
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ResumeState::new(rules),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("reading the state file {} (give --state a readable file)", path.display())
                })
            }
        };
        let inner = Inner {
            state: state.clone(),
            destinations: BTreeMap::new(),
            dirty: false,
            written: Instant::now(),
            failure: None,
        };
        Ok((StateFile { path: path.to_owned(), inner: Mutex::new(inner) }, state))
    }

    /// Keeps what a job event tells of the destinations: blobs present there.
    pub(crate) fn on_event(&self, event: &Event) {
        let mut inner = self.lock();
        match event {
            Event::ImageStarted { image, destination, .. } => {
                if let Ok(reference) = Reference::parse(destination) {
                    let at = (reference.registry().to_owned(), reference.repository().to_owned());
                    inner.destinations.insert(*image, at);
                }
            }
            Event::BlobDone { image, digest, .. } => {
                let Some((registry, repository)) = inner.destinations.get(image).cloned() else { return };
                if inner.state.saw(&registry, &repository, digest) {
                    inner.dirty = true;
                }
            }
            _ => {}
        }
        if inner.dirty && inner.written.elapsed() >= WRITE_EVERY {
            self.write(&mut inner);
        }
    }

    /// Writes what is left; the error of any write that failed during the job.
    pub(crate) fn finish(&self) -> anyhow::Result<()> {
        let mut inner = self.lock();
        if inner.dirty {
            self.write(&mut inner);
        }
        match inner.failure.take() {
            Some(failure) => Err(anyhow::anyhow!(failure)),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, inner: &mut Inner) {
        let bytes = inner.state.to_bytes(wall_now());
        let temporary = self.path.with_extension("tmp");
        let written =
            std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, &self.path));
        inner.dirty = false;
        inner.written = Instant::now();
        if let Err(e) = written {
            inner.failure = Some(format!(
                "writing the state file {}: {e} (give --state a file in a writable folder)",
                self.path.display()
            ));
        }
    }
}

impl UploadJournal for StateFile {
    fn session(&self, transfer: &Transfer, location: &str) {
        let mut inner = self.lock();
        if inner.state.upload_opened(&transfer.upload_start, &transfer.digest, location) {
            self.write(&mut inner);
        }
    }

    fn committed(&self, transfer: &Transfer) {
        let mut inner = self.lock();
        if inner.state.upload_ended(&transfer.upload_start, &transfer.digest) {
            inner.dirty = true;
        }
    }
}
