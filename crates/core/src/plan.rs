//! Planning: rules -> repositories -> tags -> copy tasks.
//!
//! A rule whose source names no repository lists the registry's `_catalog`; a rule that
//! wants every tag, or tags matching a pattern, lists `tags/list`. Both follow `Link:
//! <...>; rel="next"` pagination to the end. Tag filters (include, exclude, semver) apply
//! to listed tags; the platform filter travels with each task.
//!
//! A rule that lists tags at the source also lists each destination repository's tags,
//! once, so that the destination's one tag list stands in for a `HEAD` per tag where it
//! can: a tag it does not list is missing there, so its image is
//! fetched with one `GET` and no `HEAD` on either side; a repository it does not know
//! (`404`) or that lists no tag holds none of the image's blobs either. A tag it lists is
//! checked as before, so a tag that moved is always caught. With an `immutable` pattern, a
//! listed tag that matches it is held back from the copy, unchecked on either side. A
//! destination listing that fails otherwise tells nothing: every tag is checked.
//!
//! A sharded job ([`Shard`]) plans only its shard's source repositories: another shard's
//! repository is neither listed nor planned, so a rule naming one costs no request.
//!
//! A listing that fails transiently (rate limited, unavailable) can be run again in a
//! later round of the job (`Planner::retry`): its failing page is asked again, and the
//! tasks it yields join those already planned, each pair once.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::EndpointMap;
use crate::auth::Scope;
use crate::config::{DestinationSpec, Rule, TagSelector};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::listing::Listing;
use crate::manifest::PlatformFilter;
use crate::progress::Failure;
use crate::reference::Reference;
use crate::referrers::{is_referrer_tag, ReferrerFilter};
use crate::session::{Call, Outcome};
use crate::shard::Shard;

/// One image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTask {
    /// The image to read, by tag or digest.
    pub source: Reference,
    /// Where it lands, with the rule's renamed tag or else the source's.
    pub destination: Reference,
    /// Which children of an index to copy: the rule's own, else the job's.
    pub platforms: PlatformFilter,
    /// Which referrers travel with it: the rule's own, else the job's.
    pub referrers: ReferrerFilter,
}

/// What the destination's tag list told of a task's tag before any request about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum DestinationTag {
    /// Not listed (a rule naming its tags, a failed listing) or listed there: checked.
    #[default]
    Check,
    /// The repository lists other tags but not this one.
    Missing,
    /// The repository is unknown (`404`) or lists no tag: none of the image is there.
    EmptyRepository,
}

/// A planned task and what the destination's tag list told of it.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub task: CopyTask,
    /// An immutable tag the destination already lists: skipped unchecked.
    pub held: bool,
    pub listed: DestinationTag,
}

/// A repository: its registry and name.
type RepositoryKey = (String, String);

/// A destination repository's tag list, as far as it was read.
#[derive(Debug, Default)]
struct ListedTags {
    tags: BTreeSet<String>,
    /// Every page was read, or the repository is unknown.
    complete: bool,
}

/// A listing one rule waits for.
struct RuleListing {
    rule: usize,
    listing: Listing,
}

/// A failed listing, and the call for its failing page when running it again may help.
struct PlanFailure {
    failure: Failure,
    /// The job's round it failed in.
    round: u32,
    retry: Option<(RuleListing, Call)>,
}

pub(crate) struct Planner {
    rules: Vec<Rule>,
    global_platforms: PlatformFilter,
    /// Applies to rules without their own `referrers`.
    global_referrers: ReferrerFilter,
    /// Every tag each listed source repository holds, by (registry, repository): where
    /// the referrers' cosign tags are looked up.
    listed: BTreeMap<(String, String), BTreeSet<String>>,
    /// The share of the source repositories this job plans; all of them when `None`.
    shard: Option<Shard>,
    listings: BTreeMap<u64, RuleListing>,
    /// The call each listing in flight is waiting for, to ask again after a failure.
    pages: BTreeMap<u64, Call>,
    next_id: u64,
    /// Tasks planned since [`Planner::take_tasks`] last took them, each with the
    /// destination repository whose tag list tells of it, and whether its tag matches
    /// the rule's immutable pattern.
    tasks: Vec<(CopyTask, Option<RepositoryKey>, bool)>,
    /// Destination tag listings in flight, and the repositories they were started for.
    held_listings: BTreeMap<u64, Listing>,
    held_listed: BTreeSet<(String, String)>,
    /// Tags each listed destination repository holds, by (registry, repository).
    held: BTreeMap<(String, String), ListedTags>,
    seen: BTreeSet<(String, String)>,
    repositories: BTreeSet<(String, String)>,
    failures: Vec<PlanFailure>,
    /// The job's round the listings in flight belong to, from 1.
    round: u32,
    /// The job writes to its destinations: their tag lists are asked for with the push
    /// scope the copies need anyway, so one token serves both.
    writes: bool,
}

impl Planner {
    pub(crate) fn new(
        rules: Vec<Rule>,
        global_platforms: PlatformFilter,
        global_referrers: ReferrerFilter,
        shard: Option<Shard>,
    ) -> Self {
        Planner {
            rules,
            global_platforms,
            global_referrers,
            listed: BTreeMap::new(),
            shard,
            listings: BTreeMap::new(),
            pages: BTreeMap::new(),
            next_id: 0,
            tasks: Vec::new(),
            held_listings: BTreeMap::new(),
            held_listed: BTreeSet::new(),
            held: BTreeMap::new(),
            seen: BTreeSet::new(),
            repositories: BTreeSet::new(),
            failures: Vec::new(),
            round: 1,
            writes: true,
        }
    }

    /// For a dry run, which writes nothing: destination tag lists ask for pull only.
    pub(crate) fn dry_run(mut self, dry_run: bool) -> Self {
        self.writes = !dry_run;
        self
    }

    /// The first calls: catalogs and tag lists; rules that name their tags plan at once.
    pub(crate) fn start(&mut self, endpoints: &EndpointMap) -> Vec<(u64, Call)> {
        let mut calls = Vec::new();
        for rule in 0..self.rules.len() {
            let source = &self.rules[rule].source;
            match source.repository.clone() {
                None => {
                    let listing = Listing::Catalog { registry: source.registry.clone() };
                    calls.extend(self.list(rule, listing, endpoints));
                }
                Some(repository) => calls.extend(self.expand_repository(rule, &repository, endpoints)),
            }
        }
        calls
    }

    pub(crate) fn is_done(&self) -> bool {
        self.listings.is_empty() && self.held_listings.is_empty()
    }

    /// The tasks planned since the last call, in plan order, each with what the
    /// destination's tag list told of it.
    pub(crate) fn take_tasks(&mut self) -> Vec<Planned> {
        let tasks = std::mem::take(&mut self.tasks);
        tasks
            .into_iter()
            .map(|(task, key, immutable)| {
                let tag = task.destination.tag().unwrap_or_default();
                let listed = key.and_then(|k| self.held.get(&k));
                let there = listed.is_some_and(|l| l.tags.contains(tag));
                let listed = match listed {
                    Some(l) if l.complete && l.tags.is_empty() => DestinationTag::EmptyRepository,
                    Some(l) if l.complete && !there => DestinationTag::Missing,
                    _ => DestinationTag::Check,
                };
                Planned { task, held: immutable && there, listed }
            })
            .collect()
    }

    /// The tags of every source repository listed so far.
    pub(crate) fn listed(&self) -> &BTreeMap<(String, String), BTreeSet<String>> {
        &self.listed
    }

    fn rule_referrers(&self, rule: usize) -> &ReferrerFilter {
        self.rules[rule].referrers.as_ref().unwrap_or(&self.global_referrers)
    }

    /// The rules and names that failed, in the order they failed.
    pub(crate) fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.failures.iter().map(|f| &f.failure)
    }

    /// [`Planner::failures`] with the round each came from.
    pub(crate) fn failures_by_round(&self) -> impl Iterator<Item = (&Failure, u32)> {
        self.failures.iter().map(|f| (&f.failure, f.round))
    }

    /// Failed listings that running again may help (rate limited, unavailable).
    pub(crate) fn retryable(&self) -> usize {
        self.failures.iter().filter(|f| f.retry.is_some()).count()
    }

    /// Runs every retryable failed listing again from its failing page, in the job's
    /// `round`; their failures are forgotten until they fail again.
    pub(crate) fn retry(&mut self, round: u32) -> Vec<(u64, Call)> {
        self.round = round;
        let (again, kept): (Vec<PlanFailure>, Vec<PlanFailure>) =
            std::mem::take(&mut self.failures).into_iter().partition(|f| f.retry.is_some());
        self.failures = kept;
        again
            .into_iter()
            .filter_map(|f| f.retry)
            .map(|(RuleListing { rule, listing }, call)| self.track(rule, listing, call))
            .collect()
    }

    pub(crate) fn repositories(&self) -> usize {
        self.repositories.len()
    }

    /// Feeds a listing's outcome; returns follow-up calls (next pages, tag lists).
    pub(crate) fn on_outcome(
        &mut self,
        id: u64,
        outcome: Outcome,
        endpoints: &EndpointMap,
    ) -> Vec<(u64, Call)> {
        if let Some(listing) = self.held_listings.remove(&id) {
            return self.on_held_page(listing, outcome, endpoints);
        }
        let Some(RuleListing { rule, listing }) = self.listings.remove(&id) else { return Vec::new() };
        let Some(page_call) = self.pages.remove(&id) else { return Vec::new() };
        let what = listing.describe();
        let response = match outcome {
            Outcome::Response(r) if r.status().is_success() => r,
            Outcome::Response(r) => {
                let status = r.status().as_u16();
                let hint = match status {
                    404 => "the repository does not exist at the source; check the rule's source",
                    401 | 403 => "access denied: check the credentials for the source registry",
                    _ => "the source registry refused the listing",
                };
                let message = format!("listing {what}: HTTP {}: {hint}", r.status());
                let error = Error::new(ErrorKind::of_status(status), message);
                self.fail_rule(rule, listing, Some(page_call), error);
                return Vec::new();
            }
            Outcome::Failed(e) => {
                let error = e.error.context(format!("listing {what}"));
                self.fail_rule(rule, listing, Some(page_call), error);
                return Vec::new();
            }
            Outcome::Transferred => return Vec::new(),
        };
        let page = match listing.read(&response, endpoints) {
            Ok(page) => page,
            Err(e) => {
                self.fail_rule(rule, listing, None, e.context(format!("listing {what}")));
                return Vec::new();
            }
        };
        let mut calls = Vec::new();
        for item in page.items {
            match &listing {
                Listing::Catalog { .. } => calls.extend(self.expand_repository(rule, &item, endpoints)),
                Listing::Tags { registry, repository } => {
                    let key = (registry.clone(), repository.clone());
                    self.listed.entry(key).or_default().insert(item.clone());
                    // With referrers on, their tags travel beside their subject, not as images.
                    let owned_by_referrers = self.rule_referrers(rule).is_on() && is_referrer_tag(&item);
                    if !owned_by_referrers
                        && self.rules[rule].tags.matches(&item)
                        && self.rules[rule].source.selector.matches(&item)
                    {
                        self.add_tasks(rule, repository, Some(&item), None, None);
                    }
                }
            }
        }
        if let Some(next) = page.next {
            calls.push(self.track(rule, listing, next));
        }
        calls
    }

    /// A page of a destination's tags: what it holds. A `404` says the repository is not
    /// there; any other failure ends the listing with what is known so far, which only
    /// holds back fewer tags and checks every tag.
    fn on_held_page(
        &mut self,
        listing: Listing,
        outcome: Outcome,
        endpoints: &EndpointMap,
    ) -> Vec<(u64, Call)> {
        let Listing::Tags { registry, repository } = &listing else { return Vec::new() };
        let Outcome::Response(response) = outcome else { return Vec::new() };
        let key = (registry.clone(), repository.clone());
        if response.status() == http::StatusCode::NOT_FOUND {
            self.held.entry(key).or_default().complete = true;
            return Vec::new();
        }
        if !response.status().is_success() {
            return Vec::new();
        }
        let Ok(page) = listing.read(&response, endpoints) else { return Vec::new() };
        let listed = self.held.entry(key).or_default();
        listed.tags.extend(page.items);
        match page.next {
            Some(call) => vec![self.track_held(listing, call)],
            None => {
                listed.complete = true;
                Vec::new()
            }
        }
    }

    fn track_held(&mut self, listing: Listing, call: Call) -> (u64, Call) {
        self.next_id += 1;
        self.held_listings.insert(self.next_id, listing);
        (self.next_id, call)
    }

    /// For a rule that lists tags: the first page of each destination repository's tags
    /// not listed yet.
    fn list_destinations(
        &mut self,
        rule: usize,
        repository: &str,
        endpoints: &EndpointMap,
    ) -> Vec<(u64, Call)> {
        let rule_ref = &self.rules[rule];
        let whole_registry = rule_ref.source.repository.is_none();
        let keys: Vec<(String, String)> = rule_ref
            .destinations
            .iter()
            .map(|d| (d.registry.clone(), destination_repository(d, repository, whole_registry)))
            .collect();
        let mut calls = Vec::new();
        for (registry, repository) in keys {
            if !self.held_listed.insert((registry.clone(), repository.clone())) {
                continue;
            }
            let scope = Scope::push_pull(&repository);
            let listing = Listing::Tags { registry, repository };
            if let Ok(mut call) = listing.first(endpoints) {
                if let (Call::Send { auth, .. }, true) = (&mut call, self.writes) {
                    auth.scopes = vec![scope];
                }
                calls.push(self.track_held(listing, call));
            }
        }
        calls
    }

    fn expand_repository(
        &mut self,
        rule: usize,
        repository: &str,
        endpoints: &EndpointMap,
    ) -> Vec<(u64, Call)> {
        let registry = self.rules[rule].source.registry.clone();
        if self.shard.is_some_and(|shard| !shard.owns(&registry, repository)) {
            return Vec::new();
        }
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
                let listing = Listing::Tags { registry, repository: repository.to_owned() };
                let mut calls: Vec<(u64, Call)> = self.list(rule, listing, endpoints).into_iter().collect();
                calls.extend(self.list_destinations(rule, repository, endpoints));
                calls
            }
        }
    }

    /// Starts a listing for `rule`, or fails the rule for it when its URL cannot be formed.
    fn list(&mut self, rule: usize, listing: Listing, endpoints: &EndpointMap) -> Option<(u64, Call)> {
        match listing.first(endpoints) {
            Ok(call) => Some(self.track(rule, listing, call)),
            Err(e) => {
                let what = listing.describe();
                self.fail_rule(rule, listing, None, e.context(format!("listing {what}")));
                None
            }
        }
    }

    fn track(&mut self, rule: usize, listing: Listing, call: Call) -> (u64, Call) {
        self.next_id += 1;
        self.listings.insert(self.next_id, RuleListing { rule, listing });
        self.pages.insert(self.next_id, call.clone());
        (self.next_id, call)
    }

    /// Adds a task per destination. `position` is the tag's place in the rule's own tag
    /// list, which picks the destination's renamed tag, if it has any.
    fn add_tasks(
        &mut self,
        rule: usize,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
        position: Option<usize>,
    ) {
        let rule_ref = &self.rules[rule];
        let source = match Reference::new(&rule_ref.source.registry, repository, tag, digest.clone()) {
            Ok(r) => r,
            Err(e) => {
                let source = format!("{}/{repository}:{}", rule_ref.source.registry, tag.unwrap_or("?"));
                let error = Error::new(ErrorKind::InvalidName, e.to_string());
                let failure = Failure::new(source, String::new(), error);
                self.failures.push(PlanFailure { failure, round: self.round, retry: None });
                return;
            }
        };
        let platforms = match PlatformFilter::new(&[], &[], &rule_ref.platforms) {
            Ok(own) if !own.is_empty() => own,
            _ => self.global_platforms.clone(),
        };
        let referrers = self.rule_referrers(rule).clone();
        let rule_ref = &self.rules[rule];
        let whole_registry = rule_ref.source.repository.is_none();
        // A listed tag's destination repository is listed too; an immutable tag may be held
        // back by it.
        let immutable =
            rule_ref.immutable.as_ref().zip(tag).is_some_and(|(pattern, tag)| pattern.matches(tag));
        let listed = position.is_none() && tag.is_some();
        let destinations: Vec<_> = rule_ref
            .destinations
            .iter()
            .map(|d| {
                let key = listed
                    .then(|| (d.registry.clone(), destination_repository(d, repository, whole_registry)));
                (destination_for(d, repository, whole_registry, tag, digest.clone(), position), key)
            })
            .collect();
        for (destination, key) in destinations {
            let destination = match destination {
                Ok(d) => d,
                Err(e) => {
                    let error = Error::new(ErrorKind::InvalidName, e.to_string());
                    let failure = Failure::new(source.to_string(), String::new(), error);
                    self.failures.push(PlanFailure { failure, round: self.round, retry: None });
                    continue;
                }
            };
            if self.seen.insert((source.to_string(), destination.to_string())) {
                let task = CopyTask {
                    source: source.clone(),
                    destination,
                    platforms: platforms.clone(),
                    referrers: referrers.clone(),
                };
                self.tasks.push((task, key, immutable));
            }
        }
    }

    /// Records a failed listing; `page` is the call that failed, kept to ask again when
    /// the failure is transient.
    fn fail_rule(&mut self, rule: usize, listing: Listing, page: Option<Call>, error: Error) {
        let what = match &listing {
            Listing::Catalog { registry } => registry.clone(),
            Listing::Tags { registry, repository } => format!("{registry}/{repository}"),
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
        let retry = page.filter(|_| error.is_retryable()).map(|call| (RuleListing { rule, listing }, call));
        let failure = Failure::new(what, destination, error);
        self.failures.push(PlanFailure { failure, round: self.round, retry });
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
    digest: Option<Digest>,
    position: Option<usize>,
) -> Result<Reference, crate::reference::ReferenceError> {
    let repository = destination_repository(spec, source_repository, whole_registry);
    let renamed = position.and_then(|p| spec.tags.get(p)).map(String::as_str);
    let tag = renamed.or(tag);
    let digest = if tag.is_some() { None } else { digest };
    Reference::new(&spec.registry, &repository, tag, digest)
}

/// The destination's repository for a source repository: the destination's own (or, for a
/// whole-registry rule, its prefix joined with the source path), else the source's.
fn destination_repository(spec: &DestinationSpec, source_repository: &str, whole_registry: bool) -> String {
    match (&spec.repository, whole_registry) {
        (Some(prefix), true) => format!("{prefix}/{source_repository}"),
        (Some(repository), false) => repository.clone(),
        (None, _) => source_repository.to_owned(),
    }
}
