//! Who may do what where: the `auth.access` policy ([`AccessConfig`]), compiled once at
//! start and asked for every request, on the Basic path, on the Bearer path and at the
//! token endpoint alike, so the three can never disagree.
//!
//! Without a policy, ferry keeps its simple rule: every htpasswd user may do everything,
//! anonymous clients may pull when `auth.anonymous_pull` is set.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{AccessConfig, RepositoryPolicy, Verb};

/// Who asks, for the policy: a user named by the htpasswd file, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Anonymous,
    User(&'a str),
}

impl<'a> Subject<'a> {
    /// The subject of a token: its `sub`, empty for anonymous tokens.
    pub fn of_token(sub: &'a str) -> Subject<'a> {
        if sub.is_empty() {
            Subject::Anonymous
        } else {
            Subject::User(sub)
        }
    }
}

/// The compiled policy.
#[derive(Debug, Clone)]
pub enum Policy {
    /// No `auth.access`: users may do everything; anonymous clients may pull if allowed.
    Simple {
        anonymous_pull: bool,
    },
    Rules(Rules),
}

/// A compiled `auth.access`.
#[derive(Debug, Clone)]
pub struct Rules {
    /// user -> the groups they are in.
    memberships: BTreeMap<String, BTreeSet<String>>,
    admin_users: BTreeSet<String>,
    admin_groups: BTreeSet<String>,
    /// Longest pattern first: the first that matches decides.
    patterns: Vec<(String, RepositoryPolicy)>,
}

/// What is wrong with a policy, if anything: a group used but never defined, or a
/// pattern that could never match a repository name.
pub fn problem(config: &AccessConfig) -> Option<String> {
    let defined = |group: &String| config.groups.contains_key(group);
    let used = config
        .admins
        .groups
        .iter()
        .chain(config.repositories.values().flat_map(|p| p.policies.iter().flat_map(|r| &r.groups)));
    for group in used {
        if !defined(group) {
            return Some(format!("group `{group}` is used but not defined; add it under auth.access.groups"));
        }
    }
    for pattern in config.repositories.keys() {
        let bad = pattern.is_empty()
            || pattern.starts_with('/')
            || pattern.ends_with('/')
            || pattern.contains("//")
            || pattern.contains("***");
        if bad {
            return Some(format!(
                "repository pattern {pattern:?} can never match; write it like `team-a/**` or `library/*`"
            ));
        }
    }
    None
}

impl Policy {
    pub fn from_config(access: Option<&AccessConfig>, anonymous_pull: bool) -> Policy {
        let Some(config) = access else { return Policy::Simple { anonymous_pull } };
        let mut memberships: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, users) in &config.groups {
            for user in users {
                memberships.entry(user.clone()).or_default().insert(group.clone());
            }
        }
        let mut patterns: Vec<(String, RepositoryPolicy)> =
            config.repositories.iter().map(|(p, r)| (p.clone(), r.clone())).collect();
        // Longest first; among equals, the map's (alphabetical) order, so it is stable.
        patterns.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Policy::Rules(Rules {
            memberships,
            admin_users: config.admins.users.iter().cloned().collect(),
            admin_groups: config.admins.groups.iter().cloned().collect(),
            patterns,
        })
    }

    /// Whether `who` may take `verb` in `repo`.
    pub fn allows(&self, who: Subject<'_>, repo: &str, verb: Verb) -> bool {
        match (self, who) {
            (Policy::Simple { .. }, Subject::User(_)) => true,
            (Policy::Simple { anonymous_pull }, Subject::Anonymous) => *anonymous_pull && verb == Verb::Pull,
            (Policy::Rules(rules), who) => rules.allows(who, repo, verb),
        }
    }

    /// The verbs of `verbs` that `who` may take in `repo`: what a token may grant.
    pub fn intersect(&self, who: Subject<'_>, repo: &str, verbs: &[Verb]) -> Vec<Verb> {
        let allowed: BTreeSet<Verb> = verbs.iter().copied().filter(|v| self.allows(who, repo, *v)).collect();
        allowed.into_iter().collect()
    }
}

impl Rules {
    fn groups_of(&self, user: &str) -> impl Iterator<Item = &String> {
        self.memberships.get(user).into_iter().flatten()
    }

    fn is_admin(&self, user: &str) -> bool {
        self.admin_users.contains(user) || self.groups_of(user).any(|g| self.admin_groups.contains(g))
    }

    fn allows(&self, who: Subject<'_>, repo: &str, verb: Verb) -> bool {
        if let Subject::User(user) = who {
            if self.is_admin(user) {
                return true;
            }
        }
        let Some((_, policy)) = self.patterns.iter().find(|(p, _)| matches(p, repo)) else {
            return false;
        };
        match who {
            Subject::Anonymous => policy.anonymous.contains(&verb),
            Subject::User(user) => {
                policy.default.contains(&verb)
                    || policy.policies.iter().any(|rule| {
                        rule.actions.contains(&verb)
                            && (rule.users.iter().any(|u| u == user)
                                || self.groups_of(user).any(|g| rule.groups.contains(g)))
                    })
            }
        }
    }
}

/// Glob matching over repository names: `**` matches anything (slashes included), `*`
/// anything within one path segment, every other character itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // The memo makes it |pattern| x |name| steps at worst, whatever the stars.
    let mut memo = vec![vec![None; n.len() + 1]; p.len() + 1];
    glob(p, n, 0, 0, &mut memo)
}

fn glob(p: &[u8], n: &[u8], i: usize, j: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
    if let Some(known) = memo[i][j] {
        return known;
    }
    let result = if i == p.len() {
        j == n.len()
    } else if p[i..].starts_with(b"**") {
        (j..=n.len()).any(|k| glob(p, n, i + 2, k, memo))
    } else if p[i] == b'*' {
        let segment_end = n[j..].iter().position(|&c| c == b'/').map_or(n.len(), |e| j + e);
        (j..=segment_end).any(|k| glob(p, n, i + 1, k, memo))
    } else {
        j < n.len() && p[i] == n[j] && glob(p, n, i + 1, j + 1, memo)
    };
    memo[i][j] = Some(result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn glob_table() {
        let cases = [
            ("team-a/**", "team-a/app", true),
            ("team-a/**", "team-a/x/y", true),
            ("team-a/**", "team-a", false),
            ("team-a/**", "team-ab/app", false),
            ("library/*", "library/alpine", true),
            ("library/*", "library/a/b", false),
            ("*/app", "x/app", true),
            ("*/app", "x/y/app", false),
            ("**", "anything/at/all", true),
            ("a/*/c", "a/b/c", true),
            ("a/*/c", "a//c", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**/base", "a/b/base", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name), want, "{pattern} ~ {name}");
        }
    }

    const POLICY: &str = "
auth:
  htpasswd: /h
  access:
    groups: { team-a: [alice], ops: [root] }
    admins: { groups: [ops] }
    repositories:
      'team-a/**':
        policies: [{ groups: [team-a], actions: [pull, push] }]
      'team-a/secret/*':
        policies: [{ users: [bob], actions: [pull] }]
      'library/*':
        policies: [{ users: [bob], actions: [pull, push, delete] }]
        default: [pull]
        anonymous: [pull]
";

    #[test]
    fn decisions_table() {
        let config = Config::from_yaml(POLICY).unwrap();
        config.validate().unwrap();
        let policy = Policy::from_config(config.auth.access.as_ref(), false);
        let (alice, bob, root, carol) =
            (Subject::User("alice"), Subject::User("bob"), Subject::User("root"), Subject::User("carol"));
        let anon = Subject::Anonymous;
        use Verb::{Delete, Pull, Push};
        let cases = [
            (alice, "team-a/app", vec![Pull, Push]),
            (alice, "team-a/x/y", vec![Pull, Push]),
            (alice, "team-a/secret/k", vec![]), // the longer pattern decides
            (alice, "library/base", vec![Pull]),
            (alice, "other", vec![]),
            (bob, "team-a/app", vec![]),
            (bob, "team-a/secret/k", vec![Pull]),
            (bob, "library/base", vec![Pull, Push, Delete]),
            (root, "other", vec![Pull, Push, Delete]),
            (root, "team-a/app", vec![Pull, Push, Delete]),
            (carol, "library/base", vec![Pull]),
            (anon, "library/base", vec![Pull]),
            (anon, "team-a/app", vec![]),
        ];
        for (who, repo, want) in cases {
            assert_eq!(policy.intersect(who, repo, &Verb::ALL), want, "{who:?} {repo}");
        }
        let simple = Policy::from_config(None, true);
        assert_eq!(simple.intersect(alice, "x", &Verb::ALL), Verb::ALL.to_vec());
        assert_eq!(simple.intersect(anon, "x", &Verb::ALL), vec![Pull]);
        assert!(Policy::from_config(None, false).intersect(anon, "x", &Verb::ALL).is_empty());
    }

    #[test]
    fn problems_table() {
        let cases = [
            ("auth: {htpasswd: /h, access: {admins: {groups: [nope]}}}", Some("group `nope`")),
            (
                "auth: {htpasswd: /h, access: {repositories: {a: {policies: [{groups: [g]}]}}}}",
                Some("group `g`"),
            ),
            ("auth: {htpasswd: /h, access: {repositories: {'/a': {}}}}", Some("can never match")),
            ("auth: {access: {}}", Some("needs auth.htpasswd")),
            ("auth: {htpasswd: /h, anonymous_pull: true, access: {}}", Some("anonymous: [pull]")),
            ("auth: {htpasswd: /h, access: {groups: {g: [a]}, admins: {groups: [g]}}}", None),
        ];
        for (yaml, want) in cases {
            let got = Config::from_yaml(yaml).unwrap().validate().err().map(|e| e.to_string());
            match (got, want) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.contains(want), "{yaml}: {got}"),
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
        let unknown =
            Config::from_yaml("auth: {htpasswd: /h, access: {repositories: {a: {anonymous: [write]}}}}");
        assert!(unknown.unwrap_err().to_string().contains("unknown variant `write`"));
    }
}
