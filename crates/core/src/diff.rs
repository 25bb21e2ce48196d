//! Comparing two registries, or two repositories, tag by tag.
//!
//! For each repository: one `tags/list` on each side (all pages), then one HEAD per tag
//! on each side that has it. A tag is in sync when both digests agree, missing when only
//! the source has it, different when the digests differ, and extra when only the
//! destination has it. With `details`, the source manifest (and an index's children) is
//! read too, for platforms and total size. Registry against registry lists both catalogs.
//!
//! The same machine reads one side alone, for `ls` and `inspect`: without a destination
//! it lists and HEADs the source only, and with a `reference` it skips the tag list and
//! looks at that one tag or digest.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::{CredentialStore, Scope};
use crate::copy::{content_digest, registry_error, EndpointMap};
use crate::digest::Digest;
use crate::driver::{Machine, Misuse};
use crate::listing;
use crate::manifest::media_type::MANIFEST_ACCEPT;
use crate::manifest::{Manifest, RawManifest};
use crate::plan::Endpoints;
use crate::progress::Event;
use crate::retry::RetryPolicy;
use crate::session::{AuthNeed, Call, Outcome, Session};
use crate::time::{Instant, UnixTime, WallClock};
use crate::transport::{Action, ActionId, TransferReport, TransportError};

/// One side of a diff: a registry, and a repository or (for a whole registry) an optional
/// path prefix on the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSide {
    pub registry: String,
    pub repository: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagStatus {
    InSync,
    Missing,
    Different,
    Extra,
    /// A listing of one side: there is no destination to compare with.
    Listed,
}

/// One tag's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagDiff {
    /// The repository path relative to each side (the source's path).
    pub repository: String,
    pub tag: String,
    pub status: TagStatus,
    pub source_digest: Option<Digest>,
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
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffReport {
    pub rows: Vec<TagDiff>,
    pub in_sync: usize,
    pub missing: usize,
    pub different: usize,
    pub extra: usize,
    /// Listings or HEADs that failed; a diff with errors is not in sync.
    pub errors: Vec<String>,
}

impl DiffReport {
    pub fn is_in_sync(&self) -> bool {
        self.missing + self.different + self.extra == 0 && self.errors.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Which {
    Source,
    Destination,
}

#[derive(Debug, Clone)]
enum Tag {
    Catalog(Which),
    Tags(Which, String),
    Head(Which, String, String),
    Details(String, String),
    Child(String, String),
}

#[derive(Default)]
struct RepoState {
    listed: [bool; 2],
    done: [bool; 2],
    tags: [BTreeSet<String>; 2],
}

#[derive(Default)]
struct Row {
    digests: [Option<Digest>; 2],
    media_type: Option<String>,
    heads: usize,
    platforms: Vec<String>,
    size: u64,
    details: usize,
}

/// What to compare, and how to reach both sides.
#[derive(Debug, Clone)]
pub struct DiffJob {
    pub source: DiffSide,
    /// `None` reads the source alone: every row is [`TagStatus::Listed`].
    pub destination: Option<DiffSide>,
    /// Only this tag or digest of the source repository, without listing its tags.
    pub reference: Option<String>,
    /// Also read source manifests for platforms and sizes.
    pub details: bool,
    pub credentials: CredentialStore,
    pub endpoints: EndpointMap,
    pub retry: RetryPolicy,
}

/// Compares two sides. Drive it like [`crate::copy::SyncMachine`].
pub struct DiffMachine {
    source: DiffSide,
    destination: Option<DiffSide>,
    details: bool,
    endpoints: EndpointMap,
    session: Session<Tag>,
    repos: BTreeMap<String, RepoState>,
    rows: BTreeMap<(String, String), Row>,
    errors: Vec<String>,
    events: VecDeque<Event>,
}

impl DiffMachine {
    pub fn new(job: DiffJob, now: Instant, wall: UnixTime) -> Self {
        let session = Session::new(job.credentials, job.retry, 0, WallClock::new(now, wall));
        let mut machine = DiffMachine {
            source: job.source,
            destination: job.destination,
            details: job.details,
            endpoints: job.endpoints,
            session,
            repos: BTreeMap::new(),
            rows: BTreeMap::new(),
            errors: Vec::new(),
            events: VecDeque::new(),
        };
        match (machine.source.repository.clone(), job.reference) {
            (Some(repository), Some(reference)) => {
                let one = BTreeSet::from([reference]);
                machine.head_tags(&repository, [one.clone(), one], now);
            }
            (Some(repository), None) => machine.add_repository(&repository, now),
            (None, _) => {
                for which in machine.sides() {
                    let side = machine.side(which);
                    let url = machine.endpoints.endpoint(&side.registry).catalog();
                    let call = listing::call(url, &side.registry.clone(), "", Scope::catalog());
                    machine.session.submit(Tag::Catalog(which), call, now);
                }
            }
        }
        machine
    }

    /// The comparison, sorted by repository and tag. Complete once the machine finished.
    pub fn report(&self) -> DiffReport {
        let mut report = DiffReport { errors: self.errors.clone(), ..DiffReport::default() };
        for ((repository, tag), row) in &self.rows {
            let [source_digest, destination_digest] = row.digests.clone();
            let status = match (&source_digest, &destination_digest) {
                // A reference asked for by name that neither side has.
                (None, None) => continue,
                (Some(_), None) if self.destination.is_none() => TagStatus::Listed,
                (Some(s), Some(d)) if s == d => TagStatus::InSync,
                (Some(_), Some(_)) => TagStatus::Different,
                (Some(_), None) => TagStatus::Missing,
                (None, _) => TagStatus::Extra,
            };
            match status {
                TagStatus::InSync => report.in_sync += 1,
                TagStatus::Missing => report.missing += 1,
                TagStatus::Different => report.different += 1,
                TagStatus::Extra => report.extra += 1,
                TagStatus::Listed => {}
            }
            report.rows.push(TagDiff {
                repository: repository.clone(),
                tag: tag.clone(),
                status,
                source_digest,
                destination_digest,
                media_type: row.media_type.clone(),
                platforms: row.platforms.clone(),
                size: (self.details && row.size > 0).then_some(row.size),
            });
        }
        report
    }

    /// The sides this machine reads: the source, and the destination when there is one.
    fn sides(&self) -> Vec<Which> {
        match self.destination {
            Some(_) => vec![Which::Source, Which::Destination],
            None => vec![Which::Source],
        }
    }

    fn side(&self, which: Which) -> &DiffSide {
        match (which, &self.destination) {
            (Which::Destination, Some(destination)) => destination,
            _ => &self.source,
        }
    }

    fn destination_repository(&self) -> Option<&String> {
        self.destination.as_ref().and_then(|d| d.repository.as_ref())
    }

    /// The repository on `which` side for the source-relative `path`.
    fn repository(&self, which: Which, path: &str) -> String {
        match (which, &self.source.repository, self.destination_repository()) {
            (Which::Source, _, _) => self.source.repository.clone().unwrap_or_else(|| path.to_owned()),
            (Which::Destination, Some(_), Some(repository)) => repository.clone(),
            (Which::Destination, None, Some(prefix)) => format!("{prefix}/{path}"),
            (Which::Destination, _, None) => path.to_owned(),
        }
    }

    fn add_repository(&mut self, path: &str, now: Instant) {
        if self.destination.is_none() {
            let state = self.repos.entry(path.to_owned()).or_default();
            state.listed[Which::Destination as usize] = true;
            state.done[Which::Destination as usize] = true;
        }
        for which in self.sides() {
            let state = self.repos.entry(path.to_owned()).or_default();
            if std::mem::replace(&mut state.listed[which as usize], true) {
                continue;
            }
            let side = self.side(which).registry.clone();
            let repository = self.repository(which, path);
            let url = self.endpoints.endpoint(&side).tags_list(&repository);
            let call = listing::call(url, &side, &repository, Scope::pull(&repository));
            self.session.submit(Tag::Tags(which, path.to_owned()), call, now);
        }
    }

    fn manifest_call(&self, which: Which, path: &str, reference: &str, method: Method) -> Call {
        let side = self.side(which).registry.clone();
        let repository = self.repository(which, path);
        let url = self.endpoints.endpoint(&side).manifest(&repository, reference);
        let request = Request::builder()
            .method(method)
            .uri(url)
            .header(ACCEPT, MANIFEST_ACCEPT)
            .body(Vec::new())
            .unwrap_or_default();
        Call::Send {
            request,
            auth: AuthNeed { registry: side, scopes: vec![Scope::pull(&repository)], repository },
        }
    }

    fn route(&mut self, tag: Tag, outcome: Outcome, now: Instant) {
        let response = match outcome {
            Outcome::Response(r) => r,
            Outcome::Failed(e) => return self.errors.push(e.message),
            Outcome::Transferred => return,
        };
        match tag {
            Tag::Catalog(which) => {
                let side = self.side(which).clone();
                if !response.status().is_success() {
                    let what = format!("catalog of {}", side.registry);
                    return self.errors.push(format!("{what}: {}", registry_error(&response)));
                }
                let endpoint = self.endpoints.endpoint(&side.registry);
                match listing::catalog(&response, &endpoint) {
                    Ok(page) => {
                        for repository in page.items {
                            let path = match (which, self.destination_repository()) {
                                (Which::Destination, Some(prefix)) => {
                                    match repository.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
                                        Some(path) => path.to_owned(),
                                        None => continue,
                                    }
                                }
                                _ => repository,
                            };
                            self.add_repository(&path, now);
                        }
                        if let Some(url) = page.next {
                            let call = listing::call(url, &side.registry, "", Scope::catalog());
                            self.session.submit(Tag::Catalog(which), call, now);
                        }
                    }
                    Err(e) => self.errors.push(format!("catalog of {}: {e}", side.registry)),
                }
            }
            Tag::Tags(which, path) => self.on_tags(which, path, response, now),
            Tag::Head(which, path, tag) => {
                let row = self.rows.entry((path.clone(), tag.clone())).or_default();
                row.heads -= 1;
                match response.status() {
                    s if s.is_success() => {
                        row.digests[which as usize] = content_digest(&response);
                        if which == Which::Source {
                            row.media_type = response
                                .headers()
                                .get(CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                        }
                    }
                    StatusCode::NOT_FOUND => {}
                    _ => self.errors.push(format!("{path}:{tag}: {}", registry_error(&response))),
                }
            }
            Tag::Details(path, tag) | Tag::Child(path, tag) => self.on_details(path, tag, response, now),
        }
    }

    fn on_tags(&mut self, which: Which, path: String, response: http::Response<Vec<u8>>, now: Instant) {
        let registry = self.side(which).registry.clone();
        let repository = self.repository(which, &path);
        let state = self.repos.entry(path.clone()).or_default();
        match response.status() {
            StatusCode::NOT_FOUND => state.done[which as usize] = true,
            s if s.is_success() => match listing::tags(&response, &self.endpoints.endpoint(&registry)) {
                Ok(page) => {
                    state.tags[which as usize].extend(page.items);
                    match page.next {
                        Some(url) => {
                            let call = listing::call(url, &registry, &repository, Scope::pull(&repository));
                            self.session.submit(Tag::Tags(which, path), call, now);
                            return;
                        }
                        None => state.done[which as usize] = true,
                    }
                }
                Err(e) => {
                    state.done[which as usize] = true;
                    self.errors.push(format!("tags of {registry}/{repository}: {e}"));
                }
            },
            _ => {
                state.done[which as usize] = true;
                self.errors.push(format!("tags of {registry}/{repository}: {}", registry_error(&response)));
            }
        }
        let state = &self.repos[&path];
        if !(state.done[0] && state.done[1]) {
            return;
        }
        let tags: [BTreeSet<String>; 2] = state.tags.clone();
        self.head_tags(&path, tags, now);
    }

    /// One HEAD per tag on each side that has it (and, with details, the source manifest).
    fn head_tags(&mut self, path: &str, tags: [BTreeSet<String>; 2], now: Instant) {
        let path = path.to_owned();
        let heads: Vec<(Which, String)> = self
            .sides()
            .into_iter()
            .flat_map(|w| tags[w as usize].iter().map(move |t| (w, t.clone())))
            .collect();
        for (which, tag) in heads {
            self.rows.entry((path.clone(), tag.clone())).or_default().heads += 1;
            let call = self.manifest_call(which, &path, &tag, Method::HEAD);
            self.session.submit(Tag::Head(which, path.clone(), tag.clone()), call, now);
            if self.details && which == Which::Source {
                self.rows.entry((path.clone(), tag.clone())).or_default().details += 1;
                let call = self.manifest_call(which, &path, &tag, Method::GET);
                self.session.submit(Tag::Details(path.clone(), tag), call, now);
            }
        }
    }

    /// A source manifest for details: sizes add up; an index's children are read too.
    fn on_details(&mut self, path: String, tag: String, response: http::Response<Vec<u8>>, now: Instant) {
        let row = self.rows.entry((path.clone(), tag.clone())).or_default();
        row.details -= 1;
        if !response.status().is_success() {
            return;
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Ok(raw) = RawManifest::parse(response.into_body(), content_type.as_deref()) else { return };
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
                row.details += children.len();
                for digest in children {
                    let call = self.manifest_call(Which::Source, &path, &digest, Method::GET);
                    self.session.submit(Tag::Child(path.clone(), tag.clone()), call, now);
                }
            }
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some((tag, outcome)) = self.session.poll_done() {
            self.route(tag, outcome, now);
        }
        while let Some(event) = self.session.poll_event() {
            self.events.push_back(event);
        }
    }
}

impl Machine for DiffMachine {
    fn poll_action(&mut self) -> Option<Action> {
        self.session.poll_action()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    fn handle_response(
        &mut self,
        id: ActionId,
        response: http::Response<Vec<u8>>,
        now: Instant,
    ) -> Result<(), Misuse> {
        self.session.expect(id)?;
        self.session.handle_response(id, response, now);
        self.pump(now);
        Ok(())
    }

    fn handle_failure(&mut self, id: ActionId, error: TransportError, now: Instant) -> Result<(), Misuse> {
        self.session.expect(id)?;
        self.session.handle_failure(id, error, now);
        self.pump(now);
        Ok(())
    }

    fn handle_transfer(
        &mut self,
        id: ActionId,
        _result: Result<TransferReport, TransportError>,
        _now: Instant,
    ) -> Result<(), Misuse> {
        // A diff never hands out transfers.
        Err(Misuse::UnknownAction(id))
    }

    fn handle_progress(&mut self, _id: ActionId, _bytes: u64) {}

    fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.pump(now);
    }

    fn is_finished(&self) -> bool {
        self.session.is_idle()
    }
}
