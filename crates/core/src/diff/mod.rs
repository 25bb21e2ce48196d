//! Comparing two registries, or two repositories, tag by tag.
//!
//! For each repository: one `tags/list` on each side (all pages), then one HEAD per tag
//! on each side that has it. A tag is in sync when both digests agree, missing when only
//! the source has it, different when the digests differ, and extra when only the
//! destination has it. With `details`, the source manifest (and an index's children) is
//! read too, for platforms and total size. Registry against registry lists both catalogs,
//! unless the job names its repositories (a typed list).
//!
//! The same machine reads one side alone, for `ls` and `inspect`: without a destination
//! it lists and HEADs the source only, and with a `reference` it skips the tag list and
//! looks at that one tag or digest.
//!
//! With `referrers`, each tag's manifest also has its referrers compared (see
//! `diff/referrers.rs`): per side, one request to the referrers API (or, once a registry
//! answered it 404, one read of the tag-schema index); `sha256-…` tags are then the
//! referrers' and get no row of their own.

mod referrers;

pub use referrers::ReferrerDiff;

use std::collections::{BTreeMap, BTreeSet};

use http::header::CONTENT_TYPE;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::api::{manifest_request, EndpointMap};
use crate::auth::{CredentialStore, Scope};
use crate::copy::{content_digest, refused};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::listing::Listing;
use crate::machine::SessionMachine;
use crate::manifest::{Descriptor, Manifest, RawManifest};
use crate::progress::Event;
use crate::referrers::{fallback_tag, is_referrer_tag, referrers_list};
use crate::retry::RetryPolicy;
use crate::session::{AuthNeed, Call, Outcome, Session};
use crate::time::{Instant, UnixTime, WallClock};
use crate::transport::Side;

/// What one side of a diff names: a registry, and a repository or (for a whole registry)
/// an optional path prefix on the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The registry, as a reference names it (e.g. `docker.io`).
    pub registry: String,
    /// The repository; `None` on the source compares every repository of its catalog.
    pub repository: Option<String>,
}

/// How a tag compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    /// Both sides hold the same digest.
    InSync,
    /// Only the source has the tag.
    Missing,
    /// Both have it, with different digests.
    Different,
    /// Only the destination has the tag.
    Extra,
    /// A listing of one side: there is no destination to compare with.
    Listed,
}

/// One tag's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagDiff {
    /// The repository path relative to each side (the source's path).
    pub repository: String,
    /// The tag, or the tag or digest asked for as [`DiffJob::reference`].
    pub tag: String,
    /// How the two sides compare.
    pub status: TagStatus,
    /// The digest the source's HEAD answered (`Docker-Content-Digest`), if it has the tag.
    pub source_digest: Option<Digest>,
    /// The digest the destination's HEAD answered, if it has the tag.
    pub destination_digest: Option<Digest>,
    /// The source manifest's media type, as its HEAD answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// With `details`: the source's platforms (`os/arch[/variant]`), empty for a
    /// single-platform image without a platform in its index entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// With `details`: manifests, configs and layers of the source, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// With `referrers`: the referrers of the source's manifest, as each side lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerDiff>,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffReport {
    /// One row per tag, sorted by repository and tag.
    pub rows: Vec<TagDiff>,
    /// Rows in [`TagStatus::InSync`].
    pub in_sync: usize,
    /// Rows in [`TagStatus::Missing`].
    pub missing: usize,
    /// Rows in [`TagStatus::Different`].
    pub different: usize,
    /// Rows in [`TagStatus::Extra`]. Rows in [`TagStatus::Listed`] count nowhere.
    pub extra: usize,
    /// With `referrers`: referrers both sides list, over every row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub referrers_in_sync: usize,
    /// With `referrers`: referrers only the source lists.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub referrers_missing: usize,
    /// With `referrers`: referrers only the destination lists.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub referrers_extra: usize,
    /// Listings or HEADs that failed, each with its kind; a diff with errors is not in sync.
    pub errors: Vec<Error>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl DiffReport {
    /// No tag or referrer differs and nothing failed.
    pub fn is_in_sync(&self) -> bool {
        self.missing + self.different + self.extra + self.referrers_missing + self.referrers_extra == 0
            && self.errors.is_empty()
    }
}

/// The slot of a side in per-side arrays.
fn slot(side: Side) -> usize {
    match side {
        Side::Source => 0,
        Side::Destination | Side::Registry => 1,
    }
}

/// What a diff's call was for.
#[derive(Debug, Clone)]
pub(crate) enum Purpose {
    Catalog(Side, Listing),
    Tags(Side, String, Listing),
    Head(Side, String, String),
    /// The source manifest (or an index's child) of a path and tag, for details.
    Details(String, String),
    /// A side's referrers of a row's source digest: by the API, or (`true`) by the tag
    /// schema.
    Referrers(Side, String, String, bool),
}

impl Purpose {
    /// The source-relative repository the call is about; `None` for a catalog page.
    fn path(&self) -> Option<&str> {
        match self {
            Purpose::Catalog(..) => None,
            Purpose::Tags(_, path, _)
            | Purpose::Head(_, path, _)
            | Purpose::Details(path, _)
            | Purpose::Referrers(_, path, _, _) => Some(path),
        }
    }
}

#[derive(Default)]
struct RepoState {
    listed: [bool; 2],
    done: [bool; 2],
    tags: [BTreeSet<String>; 2],
    /// Its calls submitted and not yet ended.
    in_flight: usize,
    /// Its tags have been asked about (HEADs sent): once nothing is in flight, its rows
    /// are final.
    compared: bool,
    /// Its [`Event::RepositoryDiffed`] has been emitted.
    reported: bool,
}

#[derive(Default)]
struct Row {
    digests: [Option<Digest>; 2],
    media_type: Option<String>,
    platforms: Vec<String>,
    size: u64,
    /// Each side's referrers of the source's digest, once read.
    referrers: [Option<Vec<Descriptor>>; 2],
}

/// What to compare, and how to reach both sides.
#[derive(Debug, Clone)]
pub struct DiffJob {
    /// The side that should hold the tags: what only it has is missing.
    pub source: Target,
    /// `None` reads the source alone: every row is [`TagStatus::Listed`].
    pub destination: Option<Target>,
    /// Only this tag or digest of the source repository, without listing its tags.
    pub reference: Option<String>,
    /// With a whole-registry source: compare these repositories (paths on the source; on
    /// the destination under its prefix, if any) instead of every repository of the
    /// catalogs. Drivers accept at most [`MAX_LISTED_REPOSITORIES`].
    pub repositories: Vec<String>,
    /// Also read source manifests for platforms and sizes.
    pub details: bool,
    /// Also compare each tag's referrers (signatures, SBOMs, attestations).
    pub referrers: bool,
    /// Credentials for both sides, looked up by registry and repository.
    pub credentials: CredentialStore,
    /// How to reach each registry (plain HTTP, explicit base URLs).
    pub endpoints: EndpointMap,
    /// How often and how long transient failures are retried.
    pub retry: RetryPolicy,
    /// Seeds the retry jitter.
    pub seed: u64,
}

/// The most repositories a typed list ([`DiffJob::repositories`]) may name.
pub const MAX_LISTED_REPOSITORIES: usize = 10_000;

/// The most requests a diff has in flight per registry and action class. A diff asks
/// about every tag at once; unbounded, a browser refuses the fetches beyond its own limit
/// and a registry meets a burst of thousands.
const DIFF_IN_FLIGHT: usize = 16;

/// Compares two sides. Drive it like [`crate::copy::SyncMachine`].
pub struct DiffMachine {
    source: Target,
    destination: Option<Target>,
    details: bool,
    referrers: bool,
    /// Whether a registry answers the referrers API, once one request told.
    api: BTreeMap<String, bool>,
    endpoints: EndpointMap,
    session: Session<Purpose>,
    repos: BTreeMap<String, RepoState>,
    rows: BTreeMap<(String, String), Row>,
    /// Every error so far, with the source-relative repository it is about (none for a
    /// catalog's).
    errors: Vec<(Option<String>, Error)>,
}

impl DiffMachine {
    /// A comparison on the injected clock (see [`crate::copy::SyncMachine::new`]).
    pub fn new(job: DiffJob, now: Instant, wall: UnixTime) -> Self {
        let mut session = Session::new(job.credentials, job.retry, job.seed, WallClock::new(now, wall));
        session.bound_windows(DIFF_IN_FLIGHT);
        let mut machine = DiffMachine {
            source: job.source,
            destination: job.destination,
            details: job.details,
            referrers: job.referrers,
            api: BTreeMap::new(),
            endpoints: job.endpoints,
            session,
            repos: BTreeMap::new(),
            rows: BTreeMap::new(),
            errors: Vec::new(),
        };
        match (machine.source.repository.clone(), job.reference) {
            (Some(repository), Some(reference)) => {
                let one = BTreeSet::from([reference]);
                machine.head_tags(&repository, [one.clone(), one], false, now);
            }
            (Some(repository), None) => machine.add_repository(&repository, now),
            (None, _) if !job.repositories.is_empty() => {
                for path in &job.repositories {
                    machine.add_repository(path, now);
                }
            }
            (None, _) => {
                for side in machine.sides() {
                    let listing = Listing::Catalog { registry: machine.target(side).registry.clone() };
                    machine.list(|l| Purpose::Catalog(side, l), listing, now);
                }
            }
        }
        machine
    }

    /// The comparison, sorted by repository and tag. Complete once the machine finished.
    pub fn report(&self) -> DiffReport {
        let errors = self.errors.iter().map(|(_, e)| e.clone()).collect();
        let mut report = DiffReport { errors, ..DiffReport::default() };
        for ((repository, tag), row) in &self.rows {
            let Some(diff) = self.tag_diff(repository, tag, row) else { continue };
            match diff.status {
                TagStatus::InSync => report.in_sync += 1,
                TagStatus::Missing => report.missing += 1,
                TagStatus::Different => report.different += 1,
                TagStatus::Extra => report.extra += 1,
                TagStatus::Listed => {}
            }
            for referrer in &diff.referrers {
                match referrer.status {
                    TagStatus::InSync => report.referrers_in_sync += 1,
                    TagStatus::Missing => report.referrers_missing += 1,
                    TagStatus::Extra => report.referrers_extra += 1,
                    TagStatus::Different | TagStatus::Listed => {}
                }
            }
            report.rows.push(diff);
        }
        report
    }

    /// One row of the report; `None` for a reference asked for by name that neither side
    /// has.
    fn tag_diff(&self, repository: &str, tag: &str, row: &Row) -> Option<TagDiff> {
        let [source_digest, destination_digest] = row.digests.clone();
        let status = match (&source_digest, &destination_digest) {
            (None, None) => return None,
            (Some(_), None) if self.destination.is_none() => TagStatus::Listed,
            (Some(s), Some(d)) if s == d => TagStatus::InSync,
            (Some(_), Some(_)) => TagStatus::Different,
            (Some(_), None) => TagStatus::Missing,
            (None, _) => TagStatus::Extra,
        };
        let referrers = match (self.referrers, &source_digest) {
            (true, Some(subject)) => {
                let empty = BTreeSet::new();
                let state = self.repos.get(repository);
                let tags = [0, 1].map(|side| state.map_or(&empty, |s| &s.tags[side]));
                referrers::compare(subject, &row.referrers, tags, self.destination.is_none())
            }
            _ => Vec::new(),
        };
        Some(TagDiff {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            status,
            source_digest,
            destination_digest,
            media_type: row.media_type.clone(),
            platforms: row.platforms.clone(),
            size: (self.details && row.size > 0).then_some(row.size),
            referrers,
        })
    }

    /// Emits [`Event::RepositoryDiffed`] for `path` once its tags were asked about and
    /// none of its calls is in flight: its rows and errors are then those the report
    /// will carry.
    fn report_if_compared(&mut self, path: &str) {
        let Some(state) = self.repos.get(path) else { return };
        if !state.compared || state.in_flight > 0 || state.reported {
            return;
        }
        let key = (path.to_owned(), String::new());
        let rows = self
            .rows
            .range(key..)
            .take_while(|((repository, _), _)| repository == path)
            .filter_map(|((repository, tag), row)| self.tag_diff(repository, tag, row))
            .collect();
        let errors = self
            .errors
            .iter()
            .filter(|(about, _)| about.as_deref() == Some(path))
            .map(|(_, e)| e.clone())
            .collect();
        let event = Event::RepositoryDiffed {
            source_repository: self.repository(Side::Source, path),
            destination_repository: self
                .destination
                .as_ref()
                .map(|_| self.repository(Side::Destination, path)),
            rows,
            errors,
        };
        if let Some(state) = self.repos.get_mut(path) {
            state.reported = true;
        }
        self.session.emit(event);
    }

    /// Submits a call, counting it against its repository until its outcome.
    fn submit(&mut self, purpose: Purpose, call: Call, now: Instant) {
        if let Some(path) = purpose.path() {
            self.repos.entry(path.to_owned()).or_default().in_flight += 1;
        }
        self.session.submit(purpose, call, now);
    }

    /// Keeps an error, with the repository it is about.
    fn fail(&mut self, path: Option<&str>, error: Error) {
        self.errors.push((path.map(str::to_owned), error));
    }

    /// The sides this machine reads: the source, and the destination when there is one.
    fn sides(&self) -> Vec<Side> {
        match self.destination {
            Some(_) => vec![Side::Source, Side::Destination],
            None => vec![Side::Source],
        }
    }

    fn target(&self, side: Side) -> &Target {
        match (side, &self.destination) {
            (Side::Destination, Some(destination)) => destination,
            _ => &self.source,
        }
    }

    fn destination_repository(&self) -> Option<&String> {
        self.destination.as_ref().and_then(|d| d.repository.as_ref())
    }

    /// The repository on `side` for the source-relative `path`.
    fn repository(&self, side: Side, path: &str) -> String {
        match (side, &self.source.repository, self.destination_repository()) {
            (Side::Source | Side::Registry, _, _) => {
                self.source.repository.clone().unwrap_or_else(|| path.to_owned())
            }
            (Side::Destination, Some(_), Some(repository)) => repository.clone(),
            (Side::Destination, None, Some(prefix)) => format!("{prefix}/{path}"),
            (Side::Destination, _, None) => path.to_owned(),
        }
    }

    /// Starts a listing; a name that cannot form its URL is an error of that listing
    /// alone. Says whether the listing started.
    fn list(&mut self, purpose: impl FnOnce(Listing) -> Purpose, listing: Listing, now: Instant) -> bool {
        match listing.first(&self.endpoints) {
            Ok(call) => {
                self.submit(purpose(listing), call, now);
                true
            }
            Err(e) => {
                let error = e.context(listing.describe());
                let path = purpose(listing).path().map(str::to_owned);
                self.fail(path.as_deref(), error);
                false
            }
        }
    }

    fn add_repository(&mut self, path: &str, now: Instant) {
        if self.destination.is_none() {
            let state = self.repos.entry(path.to_owned()).or_default();
            state.listed[slot(Side::Destination)] = true;
            state.done[slot(Side::Destination)] = true;
        }
        for side in self.sides() {
            let state = self.repos.entry(path.to_owned()).or_default();
            if std::mem::replace(&mut state.listed[slot(side)], true) {
                continue;
            }
            let listing = Listing::Tags {
                registry: self.target(side).registry.clone(),
                repository: self.repository(side, path),
            };
            let owned = path.to_owned();
            if !self.list(|l| Purpose::Tags(side, owned, l), listing, now) {
                self.tags_done(side, path, now);
            }
        }
    }

    fn manifest_call(&self, side: Side, path: &str, reference: &str, method: Method) -> Result<Call, Error> {
        let registry = self.target(side).registry.clone();
        let repository = self.repository(side, path);
        let uri = self.endpoints.endpoint(&registry).manifest(&repository, reference);
        let uri = uri.map_err(|e| Error::new(ErrorKind::InvalidName, format!("{path}:{reference}: {e}")))?;
        let auth = AuthNeed { registry, scopes: vec![Scope::pull(&repository)], repository };
        Ok(Call::Send { request: manifest_request(method, uri), auth })
    }

    fn submit_manifest(
        &mut self,
        purpose: Purpose,
        side: Side,
        path: &str,
        reference: &str,
        method: Method,
        now: Instant,
    ) {
        match self.manifest_call(side, path, reference, method) {
            Ok(call) => self.submit(purpose, call, now),
            Err(e) => self.fail(Some(path), e),
        }
    }

    fn on_catalog(&mut self, side: Side, listing: Listing, response: http::Response<Vec<u8>>, now: Instant) {
        let what = listing.describe();
        if !response.status().is_success() {
            return self.fail(None, refused(&response, what));
        }
        let page = match listing.read(&response, &self.endpoints) {
            Ok(page) => page,
            Err(e) => return self.fail(None, e.context(what)),
        };
        for repository in page.items {
            let path = match (side, self.destination_repository()) {
                (Side::Destination, Some(prefix)) => {
                    match repository.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')) {
                        Some(path) => path.to_owned(),
                        None => continue,
                    }
                }
                _ => repository,
            };
            self.add_repository(&path, now);
        }
        if let Some(next) = page.next {
            self.submit(Purpose::Catalog(side, listing), next, now);
        }
    }

    fn on_tags(
        &mut self,
        side: Side,
        path: String,
        listing: Listing,
        response: http::Response<Vec<u8>>,
        now: Instant,
    ) {
        match response.status() {
            StatusCode::NOT_FOUND => {}
            s if s.is_success() => match listing.read(&response, &self.endpoints) {
                Ok(page) => {
                    let state = self.repos.entry(path.clone()).or_default();
                    state.tags[slot(side)].extend(page.items);
                    if let Some(next) = page.next {
                        return self.submit(Purpose::Tags(side, path, listing), next, now);
                    }
                }
                Err(e) => self.fail(Some(&path), e.context(listing.describe())),
            },
            _ => self.fail(Some(&path), refused(&response, listing.describe())),
        }
        self.tags_done(side, &path, now);
    }

    /// One side's tags of `path` are known: once both are, HEAD them.
    fn tags_done(&mut self, side: Side, path: &str, now: Instant) {
        let state = self.repos.entry(path.to_owned()).or_default();
        state.done[slot(side)] = true;
        if !(state.done[0] && state.done[1]) {
            return;
        }
        let tags: [BTreeSet<String>; 2] = state.tags.clone();
        self.head_tags(path, tags, true, now);
    }

    /// One HEAD per tag on each side that has it (and, with details, the source manifest).
    /// Of `listed` tags, those the referrers own belong to their subjects' rows when
    /// referrers are compared; a tag asked for by name always gets its row.
    fn head_tags(&mut self, path: &str, tags: [BTreeSet<String>; 2], listed: bool, now: Instant) {
        let own_row = |tag: &String| !(listed && self.referrers && is_referrer_tag(tag));
        let heads: Vec<(Side, String)> = self
            .sides()
            .into_iter()
            .flat_map(|side| tags[slot(side)].iter().filter(|t| own_row(t)).map(move |t| (side, t.clone())))
            .collect();
        for (side, tag) in heads {
            self.rows.entry((path.to_owned(), tag.clone())).or_default();
            let purpose = Purpose::Head(side, path.to_owned(), tag.clone());
            self.submit_manifest(purpose, side, path, &tag, Method::HEAD, now);
            if self.details && side == Side::Source {
                let purpose = Purpose::Details(path.to_owned(), tag.clone());
                self.submit_manifest(purpose, side, path, &tag, Method::GET, now);
            }
        }
        self.repos.entry(path.to_owned()).or_default().compared = true;
        self.report_if_compared(path);
    }

    fn on_head(
        &mut self,
        side: Side,
        path: String,
        tag: String,
        response: &http::Response<Vec<u8>>,
        now: Instant,
    ) {
        let row = self.rows.entry((path.clone(), tag.clone())).or_default();
        match response.status() {
            s if s.is_success() => {
                row.digests[slot(side)] = content_digest(response);
                if side == Side::Source {
                    row.media_type =
                        response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    if let Some(subject) = row.digests[0].clone().filter(|_| self.referrers) {
                        for side in self.sides() {
                            self.ask_referrers(side, &path, &tag, &subject, now);
                        }
                    }
                }
            }
            StatusCode::NOT_FOUND => {}
            _ => self.fail(Some(&path), refused(response, format!("{path}:{tag}"))),
        }
    }

    /// Asks `side` for the referrers of `subject`: by the API unless its registry is known
    /// to lack it, else by the tag schema.
    fn ask_referrers(&mut self, side: Side, path: &str, tag: &str, subject: &Digest, now: Instant) {
        let registry = self.target(side).registry.clone();
        if self.api.get(&registry) == Some(&false) {
            let purpose = Purpose::Referrers(side, path.to_owned(), tag.to_owned(), true);
            return self.submit_manifest(purpose, side, path, &fallback_tag(subject), Method::GET, now);
        }
        let repository = self.repository(side, path);
        match self.endpoints.endpoint(&registry).referrers(&repository, subject) {
            Ok(uri) => {
                let auth = AuthNeed { registry, scopes: vec![Scope::pull(&repository)], repository };
                let call = Call::Send { request: crate::api::request(Method::GET, uri), auth };
                self.submit(Purpose::Referrers(side, path.to_owned(), tag.to_owned(), false), call, now);
            }
            Err(e) => self.fail(Some(path), Error::new(ErrorKind::InvalidName, format!("{path}:{tag}: {e}"))),
        }
    }

    /// A side's referrers list: the API's, or the tag schema's; a 404 of the API sends
    /// the tag-schema read, a 404 of the tag schema is an empty list.
    fn on_referrers(
        &mut self,
        (side, path, tag, by_tag): (Side, String, String, bool),
        response: http::Response<Vec<u8>>,
        now: Instant,
    ) {
        let registry = self.target(side).registry.clone();
        let what = format!("referrers of {path}:{tag} at {registry}");
        let list = match response.status() {
            StatusCode::NOT_FOUND if !by_tag => {
                self.api.insert(registry, false);
                let subject = self.rows.get(&(path.clone(), tag.clone())).and_then(|r| r.digests[0].clone());
                if let Some(subject) = subject {
                    self.ask_referrers(side, &path, &tag, &subject, now);
                }
                return;
            }
            StatusCode::NOT_FOUND => Vec::new(),
            s if s.is_success() => {
                if !by_tag {
                    self.api.insert(registry, true);
                }
                match referrers_list(response.into_body()) {
                    Ok(list) => list,
                    Err(e) => {
                        return self.fail(
                            Some(&path),
                            Error::new(ErrorKind::InvalidAnswer, format!("{what}: not an image index: {e}")),
                        )
                    }
                }
            }
            _ => return self.fail(Some(&path), refused(&response, what)),
        };
        self.rows.entry((path, tag)).or_default().referrers[slot(side)] = Some(list);
    }

    /// A source manifest for details: sizes add up; an index's children are read too.
    fn on_details(&mut self, path: String, tag: String, response: http::Response<Vec<u8>>, now: Instant) {
        if !response.status().is_success() {
            return;
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Ok(raw) = RawManifest::parse(response.into_body(), content_type.as_deref()) else { return };
        let row = self.rows.entry((path.clone(), tag.clone())).or_default();
        row.size += raw.bytes().len() as u64;
        match raw.manifest() {
            Manifest::Image(image) => row.size += image.blobs().map(|b| b.size).sum::<u64>(),
            Manifest::Index(index) => {
                let mut children = Vec::new();
                for child in &index.manifests {
                    if let Some(platform) = &child.platform {
                        if platform.os != "unknown" {
                            row.platforms.push(platform.to_string());
                        }
                    }
                    children.push(child.digest.to_string());
                }
                for digest in children {
                    let purpose = Purpose::Details(path.clone(), tag.clone());
                    self.submit_manifest(purpose, Side::Source, &path, &digest, Method::GET, now);
                }
            }
        }
    }
}

impl SessionMachine for DiffMachine {
    type Purpose = Purpose;

    fn session(&self) -> &Session<Purpose> {
        &self.session
    }

    fn session_mut(&mut self) -> &mut Session<Purpose> {
        &mut self.session
    }

    fn on_outcome(&mut self, purpose: Purpose, outcome: Outcome, now: Instant) {
        let path = purpose.path().map(str::to_owned);
        if let Some(state) = path.as_ref().and_then(|path| self.repos.get_mut(path)) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        self.route(purpose, outcome, now);
        if let Some(path) = path {
            self.report_if_compared(&path);
        }
    }

    fn finished(&self) -> bool {
        self.session.is_idle()
    }
}

impl DiffMachine {
    /// Hands a call's outcome to the step it was for.
    fn route(&mut self, purpose: Purpose, outcome: Outcome, now: Instant) {
        let api_probe = matches!(purpose, Purpose::Referrers(_, _, _, false));
        let response = match outcome {
            Outcome::Response(r) => r,
            // As in a sync: a browser sees distribution's CORS-less 404 as a network error.
            Outcome::Failed(e) if e.from_transport && api_probe => crate::copy::no_api(),
            Outcome::Failed(e) => return self.fail(purpose.path(), e.error),
            Outcome::Transferred => return,
        };
        match purpose {
            Purpose::Catalog(side, listing) => self.on_catalog(side, listing, response, now),
            Purpose::Tags(side, path, listing) => self.on_tags(side, path, listing, response, now),
            Purpose::Head(side, path, tag) => self.on_head(side, path, tag, &response, now),
            Purpose::Referrers(side, path, tag, by_tag) => {
                self.on_referrers((side, path, tag, by_tag), response, now)
            }
            Purpose::Details(path, tag) => self.on_details(path, tag, response, now),
        }
    }
}
