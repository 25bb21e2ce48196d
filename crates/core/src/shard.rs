//! Shards: one job split over `count` processes, each mirroring a disjoint share.
//!
//! A source repository belongs to exactly one shard: FNV-1a (64-bit) of
//! `registry/repository`, modulo the count. The hash is fixed by its definition, not by
//! the build or the process (Rust's `DefaultHasher` is randomised), so every process of a
//! job, on any machine, agrees on the split. A shard plans only its own repositories: a
//! rule that names another shard's repository costs it no request, and a catalog is
//! listed by every shard but its repositories' tags only by their own. Every tag of a
//! repository goes to the same shard, so no image is copied twice, and the union of the
//! shards' plans is the whole job's.
//!
//! Indexes count from 0, as Kubernetes' `JOB_COMPLETION_INDEX` does: `0/4` to `3/4`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One share of a sharded job: `index` of `count`, with `index < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawShard")]
pub struct Shard {
    index: u32,
    count: u32,
}

#[derive(Deserialize)]
struct RawShard {
    index: u32,
    count: u32,
}

impl TryFrom<RawShard> for Shard {
    type Error = ShardError;

    fn try_from(raw: RawShard) -> Result<Self, Self::Error> {
        Shard::new(raw.index, raw.count)
    }
}

/// Why a shard's index or count is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardError {
    /// `I/N` without the `/N`.
    MissingCount {
        /// What was given.
        given: String,
    },
    /// An index or count that is not a whole number.
    NotANumber {
        /// `"index"` or `"count"`.
        what: &'static str,
        /// What was given.
        given: String,
    },
    /// A count of 0.
    ZeroCount,
    /// An index at or past the count.
    IndexOutOfRange {
        /// The index given.
        index: u32,
        /// The count given.
        count: u32,
    },
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardError::MissingCount { given } => {
                write!(f, "{given:?} has no count: give INDEX/COUNT, e.g. 0/4 for the first of four shards")
            }
            ShardError::NotANumber { what, given } => {
                write!(f, "the {what} {given:?} is not a whole number")
            }
            ShardError::ZeroCount => write!(f, "the count is 0: a job needs at least 1 shard"),
            ShardError::IndexOutOfRange { index, count } => write!(
                f,
                "index {index} is out of range for {count} shard(s): indexes count from 0 to {}",
                count - 1
            ),
        }
    }
}

impl std::error::Error for ShardError {}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// A shard from an index and a count given apart, as `JOB_COMPLETION_INDEX` and
    /// `--shards` give them.
    pub fn from_parts(index: &str, count: &str) -> Result<Shard, ShardError> {
        Shard::new(number("index", index)?, Shard::parse_count(count)?)
    }

    /// A count of shards, at least 1.
    pub fn parse_count(count: &str) -> Result<u32, ShardError> {
        match number("count", count)? {
            0 => Err(ShardError::ZeroCount),
            n => Ok(n),
        }
    }

    /// Which shard this is, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the job is split into.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the source repository `registry/repository` is this shard's.
    pub fn owns(&self, registry: &str, repository: &str) -> bool {
        Shard::of(registry, repository, self.count) == self.index
    }

    /// The shard of `count` that `registry/repository` belongs to.
    pub fn of(registry: &str, repository: &str, count: u32) -> u32 {
        let key = registry.bytes().chain([b'/']).chain(repository.bytes());
        (fnv1a(key) % u64::from(count.max(1))) as u32
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// `INDEX/COUNT`, e.g. `0/4`.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let Some((index, count)) = text.split_once('/') else {
            return Err(ShardError::MissingCount { given: text.to_owned() });
        };
        Shard::from_parts(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn number(what: &'static str, given: &str) -> Result<u32, ShardError> {
    let trimmed = given.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ShardError::NotANumber { what, given: given.to_owned() });
    }
    trimmed.parse().map_err(|_| ShardError::NotANumber { what, given: given.to_owned() })
}

/// FNV-1a, 64-bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_and_count() {
        let cases = [
            ("0/1", Ok((0, 1))),
            ("2/4", Ok((2, 4))),
            ("3/3", Err(ShardError::IndexOutOfRange { index: 3, count: 3 })),
            ("0/0", Err(ShardError::ZeroCount)),
            ("x/2", Err(ShardError::NotANumber { what: "index", given: "x".into() })),
            ("1/y", Err(ShardError::NotANumber { what: "count", given: "y".into() })),
            ("-1/2", Err(ShardError::NotANumber { what: "index", given: "-1".into() })),
            ("2", Err(ShardError::MissingCount { given: "2".into() })),
            ("", Err(ShardError::MissingCount { given: String::new() })),
        ];
        for (text, want) in cases {
            let got = text.parse::<Shard>().map(|s| (s.index(), s.count()));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn fnv1a_matches_its_reference_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a("".bytes()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar".bytes()), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_repository_has_exactly_one_shard() {
        for count in 1..=5 {
            for repository in ["a", "team/app", "library/nginx", "x/y/z"] {
                let owners = (0..count)
                    .filter(|&i| Shard::new(i, count).unwrap().owns("registry.test", repository))
                    .count();
                assert_eq!(owners, 1, "{repository} in {count} shards");
            }
        }
    }

    #[test]
    fn serialises_as_index_and_count_and_refuses_a_bad_one() {
        let shard = Shard::new(1, 3).unwrap();
        assert_eq!(serde_json::to_string(&shard).unwrap(), r#"{"index":1,"count":3}"#);
        assert!(serde_json::from_str::<Shard>(r#"{"index":3,"count":3}"#).is_err());
    }
}
