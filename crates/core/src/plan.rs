//! Planning: rules -> repositories -> tags -> copy tasks.
//!
//! A rule whose source names no repository lists the registry's `_catalog`; a rule that
//! wants every tag, or tags matching a pattern, lists `tags/list`. Both follow `Link:
//! <...>; rel="next"` pagination to the end. Tag filters (include, exclude, semver) apply
//! to listed tags; the platform filter travels with each task.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::Endpoint;
use crate::auth::Scope;
use crate::config::{DestinationSpec, Rule, TagSelector};
use crate::listing;
use crate::manifest::PlatformFilter;
use crate::progress::Failure;
use crate::reference::Reference;
use crate::session::{Call, Outcome};

/// One image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTask {
    pub source: Reference,
    pub destination: Reference,
    pub platforms: PlatformFilter,
}

/// Resolves a registry name to its endpoint (scheme and host).
pub trait Endpoints {
    fn endpoint(&self, registry: &str) -> Endpoint;
}

enum Listing {
    Catalog { rule: usize },
    Tags { rule: usize, repository: String },
}

pub(crate) struct Planner {
    rules: Vec<Rule>,
    global_platforms: PlatformFilter,
    listings: BTreeMap<u64, Listing>,
    next_id: u64,
    tasks: Vec<CopyTask>,
    seen: BTreeSet<(String, String)>,
    repositories: BTreeSet<(String, String)>,
    pub failures: Vec<Failure>,
}

impl Planner {
    pub fn new(rules: Vec<Rule>, global_platforms: PlatformFilter) -> Self {
        Planner {
            rules,
            global_platforms,
            listings: BTreeMap::new(),
            next_id: 0,
            tasks: Vec::new(),
            seen: BTreeSet::new(),
            repositories: BTreeSet::new(),
            failures: Vec::new(),
        }
    }

    /// The first calls: catalogs and tag lists; rules that name their tags plan at once.
    pub fn start(&mut self, endpoints: &dyn Endpoints) -> Vec<(u64, Call)> {
        let mut calls = Vec::new();
        for rule in 0..self.rules.len() {
            let source = &self.rules[rule].source;
            match source.repository.clone() {
                None => {
                    let url = endpoints.endpoint(&source.registry).catalog();
                    let registry = source.registry.clone();
                    calls.push(self.list(Listing::Catalog { rule }, &registry, "", Scope::catalog(), url));
                }
                Some(repository) => calls.extend(self.expand_repository(rule, &repository, endpoints)),
            }
        }
        calls
    }

    pub fn is_done(&self) -> bool {
        self.listings.is_empty()
    }

    pub fn take_tasks(&mut self) -> Vec<CopyTask> {
        std::mem::take(&mut self.tasks)
    }

    pub fn repositories(&self) -> usize {
        self.repositories.len()
    }

    /// Feeds a listing's outcome; returns follow-up calls (next pages, tag lists).
    pub fn on_outcome(&mut self, id: u64, outcome: Outcome, endpoints: &dyn Endpoints) -> Vec<(u64, Call)> {
        let Some(listing) = self.listings.remove(&id) else { return Vec::new() };
        let (rule, what) = match &listing {
            Listing::Catalog { rule } => (*rule, format!("catalog of {}", self.rules[*rule].source.registry)),
            Listing::Tags { rule, repository } => {
                (*rule, format!("tags of {}/{repository}", self.rules[*rule].source.registry))
            }
        };
        let response = match outcome {
            Outcome::Response(r) if r.status().is_success() => r,
            Outcome::Response(r) => {
                let hint = match r.status().as_u16() {
                    404 => "the repository does not exist at the source; check the rule's source",
                    401 | 403 => "access denied: check the credentials for the source registry",
                    _ => "the source registry refused the listing",
                };
                self.fail_rule(rule, &listing, format!("listing {what}: HTTP {}: {hint}", r.status()), false);
                return Vec::new();
            }
            Outcome::Failed(e) => {
                self.fail_rule(rule, &listing, format!("listing {what}: {}", e.message), e.retryable);
                return Vec::new();
            }
            Outcome::Transferred => return Vec::new(),
        };
        let registry = self.rules[rule].source.registry.clone();
        let endpoint = endpoints.endpoint(&registry);
        let mut calls = Vec::new();
        match listing {
            Listing::Catalog { rule } => {
                let page = match listing::catalog(&response, &endpoint) {
                    Ok(page) => page,
                    Err(e) => {
                        let reason = format!("listing {what}: {e}");
                        self.fail_rule(rule, &Listing::Catalog { rule }, reason, false);
                        return Vec::new();
                    }
                };
                for repository in page.items {
                    calls.extend(self.expand_repository(rule, &repository, endpoints));
                }
                if let Some(url) = page.next {
                    calls.push(self.list(Listing::Catalog { rule }, &registry, "", Scope::catalog(), url));
                }
            }
            Listing::Tags { rule, repository } => {
                let page = match listing::tags(&response, &endpoint) {
                    Ok(page) => page,
                    Err(e) => {
                        let reason = format!("listing {what}: {e}");
                        self.fail_rule(rule, &Listing::Tags { rule, repository }, reason, false);
                        return Vec::new();
                    }
                };
                for tag in page.items {
                    if self.rules[rule].tags.matches(&tag) && self.rules[rule].source.selector.matches(&tag) {
                        self.add_tasks(rule, &repository, Some(&tag), None, None);
                    }
                }
                if let Some(url) = page.next {
                    let scope = Scope::pull(&repository);
                    calls.push(self.list(
                        Listing::Tags { rule, repository: repository.clone() },
                        &registry,
                        &repository,
                        scope,
                        url,
                    ));
                }
            }
        }
        calls
    }

    fn expand_repository(
        &mut self,
        rule: usize,
        repository: &str,
        endpoints: &dyn Endpoints,
    ) -> Vec<(u64, Call)> {
        let registry = self.rules[rule].source.registry.clone();
        self.repositories.insert((registry.clone(), repository.to_owned()));
        match self.rules[rule].source.selector.clone() {
            TagSelector::List(tags) => {
                for (position, tag) in tags.iter().enumerate() {
                    self.add_tasks(rule, repository, Some(tag), None, Some(position));
                }
                Vec::new()
            }
            TagSelector::Digest(digest) => {
                self.add_tasks(rule, repository, None, Some(digest), Some(0));
                Vec::new()
            }
            TagSelector::All | TagSelector::Pattern(_) => {
                let url = endpoints.endpoint(&registry).tags_list(repository);
                let listing = Listing::Tags { rule, repository: repository.to_owned() };
                vec![self.list(listing, &registry, repository, Scope::pull(repository), url)]
            }
        }
    }

    fn list(
        &mut self,
        listing: Listing,
        registry: &str,
        repository: &str,
        scope: Scope,
        url: String,
    ) -> (u64, Call) {
        self.next_id += 1;
        self.listings.insert(self.next_id, listing);
        (self.next_id, listing::call(url, registry, repository, scope))
    }

    /// Adds a task per destination. `position` is the tag's place in the rule's own tag
    /// list, which picks the destination's renamed tag, if it has any.
    fn add_tasks(
        &mut self,
        rule: usize,
        repository: &str,
        tag: Option<&str>,
        digest: Option<crate::digest::Digest>,
        position: Option<usize>,
    ) {
        let rule_ref = &self.rules[rule];
        let source = match Reference::new(&rule_ref.source.registry, repository, tag, digest.clone()) {
            Ok(r) => r,
            Err(e) => {
                let source = format!("{}/{repository}:{}", rule_ref.source.registry, tag.unwrap_or("?"));
                self.failures.push(Failure {
                    source,
                    destination: String::new(),
                    reason: e.to_string(),
                    retryable: false,
                });
                return;
            }
        };
        let platforms = match PlatformFilter::new(&[], &[], &rule_ref.platforms) {
            Ok(own) if !own.is_empty() => own,
            _ => self.global_platforms.clone(),
        };
        let whole_registry = rule_ref.source.repository.is_none();
        let destinations: Vec<_> = rule_ref
            .destinations
            .iter()
            .map(|d| destination_for(d, repository, whole_registry, tag, digest.clone(), position))
            .collect();
        for destination in destinations {
            let destination = match destination {
                Ok(d) => d,
                Err(e) => {
                    self.failures.push(Failure {
                        source: source.to_string(),
                        destination: String::new(),
                        reason: e.to_string(),
                        retryable: false,
                    });
                    continue;
                }
            };
            if self.seen.insert((source.to_string(), destination.to_string())) {
                self.tasks.push(CopyTask {
                    source: source.clone(),
                    destination,
                    platforms: platforms.clone(),
                });
            }
        }
    }

    fn fail_rule(&mut self, rule: usize, listing: &Listing, reason: String, retryable: bool) {
        let source = &self.rules[rule].source;
        let what = match listing {
            Listing::Catalog { .. } => source.registry.clone(),
            Listing::Tags { repository, .. } => format!("{}/{repository}", source.registry),
        };
        let destination = self.rules[rule]
            .destinations
            .iter()
            .map(|d| match &d.repository {
                Some(r) => format!("{}/{r}", d.registry),
                None => d.registry.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.failures.push(Failure { source: what, destination, reason, retryable });
    }
}

/// Where one source image lands: the destination's repository (or, for a whole-registry
/// rule, its prefix joined with the source path), with the source's tag unless the rule
/// renames it.
fn destination_for(
    spec: &DestinationSpec,
    source_repository: &str,
    whole_registry: bool,
    tag: Option<&str>,
    digest: Option<crate::digest::Digest>,
    position: Option<usize>,
) -> Result<Reference, crate::reference::ReferenceError> {
    let repository = match (&spec.repository, whole_registry) {
        (Some(prefix), true) => format!("{prefix}/{source_repository}"),
        (Some(repository), false) => repository.clone(),
        (None, _) => source_repository.to_owned(),
    };
    let renamed = position.and_then(|p| spec.tags.get(p)).map(String::as_str);
    let tag = renamed.or(tag);
    let digest = if tag.is_some() { None } else { digest };
    Reference::new(&spec.registry, &repository, tag, digest)
}
