//! Whether the config files changed since they were last read.
//!
//! By content, not by modification time: a Kubernetes ConfigMap volume swaps a symlink,
//! and an editor may write a file twice within a second.

use std::path::PathBuf;

use crate::sync::SyncArgs;

/// The files a sync reads (`--config`, or `--auth` and `--images`) and what they held.
pub(super) struct Sources {
    paths: Vec<PathBuf>,
    seen: Vec<Option<Vec<u8>>>,
}

impl Sources {
    pub(super) fn new(args: &SyncArgs) -> Sources {
        let paths: Vec<PathBuf> =
            [&args.config, &args.auth, &args.images].into_iter().flatten().cloned().collect();
        let seen = vec![None; paths.len()];
        Sources { paths, seen }
    }

    fn read(&self) -> Vec<Option<Vec<u8>>> {
        self.paths.iter().map(|p| std::fs::read(p).ok()).collect()
    }

    /// Takes the files' current contents as the ones loaded.
    pub(super) fn remember(&mut self) {
        self.seen = self.read();
    }

    /// Whether any file differs from what [`Sources::remember`] took (a missing file
    /// counts as a change once).
    pub(super) fn changed(&self) -> bool {
        self.read() != self.seen
    }
}
