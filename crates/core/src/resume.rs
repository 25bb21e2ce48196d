//! What a run leaves for the next one (`ferry sync --state FILE`): the upload sessions it
//! opened and the blobs it saw at each destination.
//!
//! A run killed in the middle of a blob leaves its upload session at the registry. The OCI
//! Distribution Spec keeps such a session open: "the upload's progress can be retrieved
//! with a `GET` request to the upload URL" (`204 No Content` with `Range: 0-<end>`), and
//! chunks go on from there. So the next run, given the session's `Location`, asks where it
//! stands and sends only the rest (the core's [`Upload`](crate::upload::Upload) machine in
//! its resuming state); a session the registry no longer knows opens a fresh one.
//!
//! Nothing in the file is trusted blindly:
//! - a file that is not ferry's state, of another version or for other rules (foreign),
//!   or saved longer ago than [`MAX_AGE`] (stale: registries purge old sessions), is
//!   ignored as a whole, with a warning that says why;
//! - an upload whose `Location` is not on its registry's origin is dropped: the upload's
//!   credentials would follow it to another host;
//! - a blob the file saw is only a hint: the destination is still asked (`HEAD`) for every
//!   blob and every manifest before a manifest is pushed; a blob it lacks in the wanted
//!   repository is mounted from the repository the file saw it in, which the registry does
//!   only when it holds it, and transferred otherwise.
//!
//! The core parses and decides; the driver reads and writes the file.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Rule;
use crate::digest::Digest;
use crate::time::UnixTime;

/// The file format's version.
const VERSION: u32 = 1;

/// A file saved longer ago than this is stale: seven days, distribution's default
/// `uploadpurging` age, after which a registry may have dropped the sessions.
pub const MAX_AGE: u64 = 7 * 24 * 3600;

/// An upload session a run opened, until its blob was committed or given up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UploadNote {
    /// The `POST` URL that opened it (`/v2/<name>/blobs/uploads/`): names the registry and
    /// repository.
    pub upload_start: String,
    /// The blob going up.
    pub digest: Digest,
    /// The session's last `Location`, absolute.
    pub location: String,
}

/// A blob seen at a destination (present, mounted or committed there).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PresentNote {
    /// The destination registry.
    pub registry: String,
    /// The repository it was seen in.
    pub repository: String,
    /// The blob.
    pub digest: Digest,
}

/// The state file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Names the format; a file without it is not ferry's state.
    ferry_state: u32,
    /// Names the job's rules; a file for other rules is foreign.
    job: String,
    /// When it was saved, Unix seconds.
    saved_at: u64,
    uploads: BTreeSet<UploadNote>,
    present: BTreeSet<PresentNote>,
}

/// Why a state file was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// Not ferry's state, or of another version.
    NotState(String),
    /// Written for other rules.
    Foreign,
    /// Saved longer ago than [`MAX_AGE`], or in the future.
    Stale {
        /// Seconds between its saving and now (negative: in the future).
        age: i64,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::NotState(why) => write!(f, "it is not a ferry state file ({why})"),
            Ignored::Foreign => f.write_str("it was written for other rules"),
            Ignored::Stale { age } if *age < 0 => write!(f, "it says it was saved {} s in the future", -age),
            Ignored::Stale { age } => write!(
                f,
                "it was saved {} h ago, longer than the {} h registries keep upload sessions",
                age / 3600,
                MAX_AGE / 3600
            ),
        }
    }
}

impl ResumeState {
    /// An empty state for the job of `rules`.
    pub fn new(rules: &[Rule]) -> ResumeState {
        ResumeState { ferry_state: VERSION, job: fingerprint(rules), ..ResumeState::default() }
    }

    /// The state in `bytes` when it is ferry's, for `rules`, and fresh at `now`; else an
    /// empty one and why the file was ignored. Uploads whose `Location` leaves their
    /// registry are dropped.
    pub fn load(bytes: &[u8], rules: &[Rule], now: UnixTime) -> (ResumeState, Option<Ignored>) {
        let fresh = ResumeState::new(rules);
        let state: ResumeState = match serde_json::from_slice(bytes) {
            Ok(state) => state,
            Err(e) => return (fresh, Some(Ignored::NotState(e.to_string()))),
        };
        if state.ferry_state != VERSION {
            let why = format!("format {}, this ferry writes {VERSION}", state.ferry_state);
            return (fresh, Some(Ignored::NotState(why)));
        }
        if state.job != fresh.job {
            return (fresh, Some(Ignored::Foreign));
        }
        let age = now.0 as i64 - state.saved_at as i64;
        if !(0..=MAX_AGE as i64).contains(&age) {
            return (fresh, Some(Ignored::Stale { age }));
        }
        let mut state = state;
        state.uploads.retain(|u| same_origin(&u.upload_start, &u.location));
        (state, None)
    }

    /// The file's bytes, saved at `now`.
    pub fn to_bytes(&mut self, now: UnixTime) -> Vec<u8> {
        self.saved_at = now.0;
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The session a past run left for this blob's upload, if any.
    pub fn upload(&self, upload_start: &str, digest: &Digest) -> Option<&str> {
        self.uploads
            .iter()
            .find(|u| u.upload_start == upload_start && &u.digest == digest)
            .map(|u| u.location.as_str())
    }

    /// Records the session of an upload, replacing the one before. Returns whether it changed.
    pub fn upload_opened(&mut self, upload_start: &str, digest: &Digest, location: &str) -> bool {
        if self.upload(upload_start, digest) == Some(location) {
            return false;
        }
        self.upload_ended(upload_start, digest);
        self.uploads.insert(UploadNote {
            upload_start: upload_start.to_owned(),
            digest: digest.clone(),
            location: location.to_owned(),
        })
    }

    /// Forgets the session of an upload that committed or was given up. Returns whether
    /// there was one.
    pub fn upload_ended(&mut self, upload_start: &str, digest: &Digest) -> bool {
        let before = self.uploads.len();
        self.uploads.retain(|u| !(u.upload_start == upload_start && &u.digest == digest));
        self.uploads.len() != before
    }

    /// Records a blob seen in a destination repository. Returns whether it is new.
    pub fn saw(&mut self, registry: &str, repository: &str, digest: &Digest) -> bool {
        self.present.insert(PresentNote {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            digest: digest.clone(),
        })
    }

    /// The repositories of `registry` a past run saw `digest` in.
    pub fn seen_in<'a>(&'a self, registry: &'a str, digest: &'a Digest) -> impl Iterator<Item = &'a str> {
        self.present
            .iter()
            .filter(move |p| p.registry == registry && &p.digest == digest)
            .map(|p| p.repository.as_str())
    }

    /// How many sessions and blobs it holds.
    pub fn counts(&self) -> (usize, usize) {
        (self.uploads.len(), self.present.len())
    }
}

/// Names a job by its rules: FNV-1a of their description.
fn fingerprint(rules: &[Rule]) -> String {
    let text = format!("{rules:?}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Whether `url` has the scheme and authority of `base`.
fn same_origin(base: &str, url: &str) -> bool {
    let origin = |u: &str| {
        let (scheme, rest) = u.split_once("://")?;
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        Some((scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
    };
    origin(base).is_some_and(|o| Some(o) == origin(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256(b"blob")
    }

    const START: &str = "http://dst.test/v2/app/blobs/uploads/";

    fn saved(state: &mut ResumeState, at: u64) -> Vec<u8> {
        state.to_bytes(UnixTime(at))
    }

    #[test]
    fn a_saved_state_loads_back_for_the_same_rules() {
        let mut state = ResumeState::new(&[]);
        state.upload_opened(START, &digest(), "http://dst.test/v2/app/blobs/uploads/abc?_state=x");
        state.saw("dst.test", "app", &digest());
        let bytes = saved(&mut state, 1000);
        let (loaded, ignored) = ResumeState::load(&bytes, &[], UnixTime(1060));
        assert_eq!(ignored, None);
        assert_eq!(
            loaded.upload(START, &digest()),
            Some("http://dst.test/v2/app/blobs/uploads/abc?_state=x")
        );
        assert_eq!(loaded.seen_in("dst.test", &digest()).collect::<Vec<_>>(), ["app"]);
    }

    #[test]
    fn foreign_stale_and_malformed_files_are_ignored_with_the_reason() {
        let mut state = ResumeState::new(&[]);
        let bytes = saved(&mut state, 1000);
        let other: Vec<Rule> =
            crate::config::parse_images_file("i.json", r#"{"a.test/x": "b.test/x"}"#, &|_| None).unwrap();
        let cases: [(&[u8], &[Rule], u64, &str); 5] = [
            (b"{}", &[], 1000, "not a ferry state file"),
            (b"not json", &[], 1000, "not a ferry state file"),
            (&bytes, &other, 1000, "written for other rules"),
            (&bytes, &[], 1000 + MAX_AGE + 1, "longer than the 168 h"),
            (&bytes, &[], 10, "in the future"),
        ];
        for (bytes, rules, now, says) in cases {
            let (loaded, ignored) = ResumeState::load(bytes, rules, UnixTime(now));
            let ignored = ignored.expect("ignored");
            assert!(ignored.to_string().contains(says), "{ignored}");
            assert_eq!(loaded.counts(), (0, 0));
        }
    }

    #[test]
    fn an_upload_whose_location_leaves_its_registry_is_dropped() {
        let mut state = ResumeState::new(&[]);
        state.upload_opened(START, &digest(), "http://elsewhere.test/v2/app/blobs/uploads/abc");
        let bytes = saved(&mut state, 1000);
        let (loaded, ignored) = ResumeState::load(&bytes, &[], UnixTime(1000));
        assert_eq!(ignored, None);
        assert_eq!(loaded.upload(START, &digest()), None);
    }

    #[test]
    fn an_ended_upload_is_forgotten() {
        let mut state = ResumeState::new(&[]);
        assert!(state.upload_opened(START, &digest(), "http://dst.test/u/1"));
        assert!(!state.upload_opened(START, &digest(), "http://dst.test/u/1"));
        assert!(state.upload_opened(START, &digest(), "http://dst.test/u/2"));
        assert_eq!(state.counts(), (1, 0));
        assert!(state.upload_ended(START, &digest()));
        assert_eq!(state.upload(START, &digest()), None);
    }
}
