//! The tag lists of source repositories, where cosign's `sha256-<hex>.sig|.att|.sbom`
//! tags are looked up: the plan's, at no cost, else one listing per repository (every
//! page), for the subjects that wait for it.

use std::collections::BTreeSet;

use http::StatusCode;

use super::SubjectId;
use crate::api::EndpointMap;
use crate::copy::refused;
use crate::error::Error;
use crate::listing::{Listing, Page};
use crate::session::{Call, Outcome};

/// A repository's tags: known, or being listed for the subjects waiting.
enum Tags {
    Known(BTreeSet<String>),
    Listing { listing: Listing, items: BTreeSet<String>, waiting: Vec<SubjectId> },
}

/// What [`RepoTags::lookup`] found.
pub(super) enum Lookup {
    /// The tags, known already.
    Known(BTreeSet<String>),
    /// A listing is under way; the subject is told with the others when it ends.
    Waiting,
    /// Send this call, the listing's first page, under the listing's number.
    Start(usize, Box<Call>),
    /// The repository's name cannot form a listing.
    Failed(Error),
}

/// What a page of a listing led to.
pub(super) enum Paged {
    /// Send the next page under the same number.
    Next(Box<Call>),
    /// The whole list, for the subjects that waited.
    Done(BTreeSet<String>, Vec<SubjectId>),
    /// The listing failed, for the subjects that waited.
    Failed(Error, Vec<SubjectId>),
    /// Not a listing in flight.
    Ignored,
}

/// Tag lists by (registry, repository), in the order they were first asked for.
#[derive(Default)]
pub(super) struct RepoTags {
    repos: Vec<((String, String), Tags)>,
}

impl RepoTags {
    /// Tags the planner listed.
    pub(super) fn know(&mut self, key: (String, String), tags: BTreeSet<String>) {
        if !self.repos.iter().any(|(k, _)| *k == key) {
            self.repos.push((key, Tags::Known(tags)));
        }
    }

    /// The tags of `key` for `subject`: known, waited for, or a listing to start.
    pub(super) fn lookup(
        &mut self,
        key: (String, String),
        subject: SubjectId,
        endpoints: &EndpointMap,
    ) -> Lookup {
        if let Some(at) = self.repos.iter().position(|(k, _)| *k == key) {
            return match &mut self.repos[at].1 {
                Tags::Known(tags) => Lookup::Known(tags.clone()),
                Tags::Listing { waiting, .. } => {
                    waiting.push(subject);
                    Lookup::Waiting
                }
            };
        }
        let listing = Listing::Tags { registry: key.0.clone(), repository: key.1.clone() };
        match listing.first(endpoints) {
            Ok(call) => {
                let at = self.repos.len();
                self.repos
                    .push((key, Tags::Listing { listing, items: BTreeSet::new(), waiting: vec![subject] }));
                Lookup::Start(at, Box::new(call))
            }
            Err(error) => Lookup::Failed(error),
        }
    }

    /// A page of listing `at`. A repository without tags (404) has no cosign tags.
    pub(super) fn on_page(&mut self, at: usize, outcome: Outcome, endpoints: &EndpointMap) -> Paged {
        let Some((_, Tags::Listing { listing, items, waiting })) = self.repos.get_mut(at) else {
            return Paged::Ignored;
        };
        let page = match outcome {
            Outcome::Response(r) if r.status().is_success() => listing.read(&r, endpoints),
            Outcome::Response(r) if r.status() == StatusCode::NOT_FOUND => {
                Ok(Page { items: Vec::new(), next: None })
            }
            Outcome::Response(r) => Err(refused(&r, listing.describe())),
            Outcome::Failed(e) => Err(e.error.context(listing.describe())),
            Outcome::Transferred => return Paged::Ignored,
        };
        match page {
            Ok(Page { items: more, next: Some(next) }) => {
                items.extend(more);
                Paged::Next(Box::new(next))
            }
            Ok(Page { items: more, next: None }) => {
                items.extend(more);
                let (tags, waiting) = (std::mem::take(items), std::mem::take(waiting));
                self.repos[at].1 = Tags::Known(tags.clone());
                Paged::Done(tags, waiting)
            }
            Err(error) => {
                let waiting = std::mem::take(waiting);
                self.repos[at].1 = Tags::Known(BTreeSet::new());
                Paged::Failed(error, waiting)
            }
        }
    }
}
