//! Content digests and streaming verification.
//!
//! OCI image-spec, "Digests": `digest ::= algorithm ":" encoded`. ferry accepts the two
//! registered algorithms: `sha256` (`encoded` is `/[a-f0-9]{64}/`) and `sha512`
//! (`/[a-f0-9]{128}/`). "When the algorithm is sha256 ... the encoded portion MUST match
//! /[a-f0-9]{64}/": lowercase hex only, exact length.

mod resumable;

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// SHA-256, the spec's default: "Implementations MUST implement SHA-256".
    Sha256,
    /// SHA-512: "Implementations MAY implement SHA-512".
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears before the `:`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest such as `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix: a bare hex string is not a digest.
    #[error("digest {0:?} has no algorithm: expected `sha256:<64 hex>` or `sha512:<128 hex>`")]
    MissingAlgorithm(String),
    /// A well-formed algorithm that is not one of the two registered ones.
    #[error("digest {input:?} uses algorithm {algorithm:?}; ferry supports sha256 and sha512")]
    UnsupportedAlgorithm {
        /// The whole text given.
        input: String,
        /// The part before the `:`.
        algorithm: String,
    },
    /// The encoded part is not the algorithm's exact length (64 for sha256, 128 for sha512).
    #[error(
        "digest {input:?} must have exactly {expected} hex characters after `{algorithm}:`, found {found}"
    )]
    WrongLength {
        /// The whole text given.
        input: String,
        /// The algorithm's name.
        algorithm: &'static str,
        /// Hex characters the algorithm needs.
        expected: usize,
        /// Characters after the `:`.
        found: usize,
    },
    /// Uppercase or non-hex characters: the spec's regexes allow only `[a-f0-9]`, so two
    /// spellings of one digest cannot both exist.
    #[error("digest {0:?} must be lowercase hex (0-9, a-f) after the `:`")]
    NotLowercaseHex(String),
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm named before the `:`, which also picks the hasher for a [`Verifier`].
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part after the `:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_owned()));
        };
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: s.to_owned(),
                    algorithm: other.to_owned(),
                })
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                input: s.to_owned(),
                algorithm: algorithm.name(),
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::NotLowercaseHex(s.to_owned()));
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub use resumable::ResumableSha256;

/// An incremental hash under one algorithm.
#[derive(Clone)]
pub struct Hasher(HasherState);

#[derive(Clone)]
enum HasherState {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`, so content is checked with the digest's own algorithm.
    pub fn new(algorithm: Algorithm) -> Self {
        Hasher(match algorithm {
            Algorithm::Sha256 => HasherState::Sha256(Sha256::new()),
            Algorithm::Sha512 => HasherState::Sha512(Sha512::new()),
        })
    }

    /// Hashes the next chunk; chunks may have any size.
    pub fn update(&mut self, chunk: &[u8]) {
        match &mut self.0 {
            HasherState::Sha256(h) => h.update(chunk),
            HasherState::Sha512(h) => h.update(chunk),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self.0 {
            HasherState::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            HasherState::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Digest { algorithm, hex: to_hex(&bytes) }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Why streamed content failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// More bytes than the descriptor's size arrived: refused at once, before the rest is
    /// read.
    #[error("content for {digest} is longer than the expected {expected} bytes (at least {seen} received)")]
    TooLong {
        /// The content's expected digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received when the overflow was seen.
        seen: u64,
    },
    /// The stream ended before the descriptor's size.
    #[error("content for {digest} ended after {actual} bytes; the descriptor says {expected}")]
    TooShort {
        /// The content's expected digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// Bytes received in all.
        actual: u64,
    },
    /// The size was right but the bytes were not: the source serves other content under
    /// this digest.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    Mismatch {
        /// The descriptor's digest.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// The source announced (`Content-Length`) a size other than the descriptor's: its copy
    /// is not this content, whatever its bytes.
    #[error("the source announces {announced} bytes for {digest}; the descriptor says {expected}")]
    WrongLength {
        /// The content's expected digest.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The source's `Content-Length`.
        announced: u64,
    },
}

/// Hashes content chunk by chunk while it streams and checks digest and size at the end.
///
/// The size is checked on every chunk, so an oversized body is refused as soon as it
/// overflows rather than after it has been read in full.
#[derive(Clone)]
pub struct Verifier {
    expected: Digest,
    expected_size: u64,
    seen: u64,
    hasher: Hasher,
}

impl Verifier {
    /// A verifier for content whose descriptor says `expected_size` bytes with digest
    /// `expected`. Both are checked: "If the length of the retrieved content does not match
    /// the specified length, the content SHOULD NOT be trusted" (image-spec, descriptor).
    pub fn new(expected: Digest, expected_size: u64) -> Self {
        let hasher = Hasher::new(expected.algorithm());
        Verifier { expected, expected_size, seen: 0, hasher }
    }

    /// Feeds the next chunk. Fails as soon as more bytes than expected have arrived.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), VerifyError> {
        self.seen += chunk.len() as u64;
        if self.seen > self.expected_size {
            return Err(VerifyError::TooLong {
                digest: self.expected.clone(),
                expected: self.expected_size,
                seen: self.seen,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// The digest the content must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// Checks the size and the digest once the stream has ended.
    pub fn finish(self) -> Result<(), VerifyError> {
        if self.seen != self.expected_size {
            return Err(VerifyError::TooShort {
                digest: self.expected,
                expected: self.expected_size,
                actual: self.seen,
            });
        }
        let actual = self.hasher.finish();
        if actual != self.expected {
            return Err(VerifyError::Mismatch { expected: self.expected, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let long = format!("sha512:{}", "a".repeat(128));
        let cases: Vec<(String, Result<(), DigestError>)> = vec![
            (EMPTY.into(), Ok(())),
            (long.clone(), Ok(())),
            ("e3b0c442".into(), Err(DigestError::MissingAlgorithm("e3b0c442".into()))),
            (
                "md5:abc".into(),
                Err(DigestError::UnsupportedAlgorithm { input: "md5:abc".into(), algorithm: "md5".into() }),
            ),
            (
                "sha256:abc".into(),
                Err(DigestError::WrongLength {
                    input: "sha256:abc".into(),
                    algorithm: "sha256",
                    expected: 64,
                    found: 3,
                }),
            ),
            (
                format!("sha256:{}", "A".repeat(64)),
                Err(DigestError::NotLowercaseHex(format!("sha256:{}", "A".repeat(64)))),
            ),
            (
                format!("sha256:{}g", "a".repeat(63)),
                Err(DigestError::NotLowercaseHex(format!("sha256:{}g", "a".repeat(63)))),
            ),
            (
                format!("sha512:{}", "a".repeat(64)),
                Err(DigestError::WrongLength {
                    input: format!("sha512:{}", "a".repeat(64)),
                    algorithm: "sha512",
                    expected: 128,
                    found: 64,
                }),
            ),
            (
                "SHA256:x".into(),
                Err(DigestError::UnsupportedAlgorithm {
                    input: "SHA256:x".into(),
                    algorithm: "SHA256".into(),
                }),
            ),
        ];
        for (input, want) in cases {
            let got = input.parse::<Digest>();
            match want {
                Ok(()) => assert_eq!(got.expect(&input).to_string(), input),
                Err(e) => assert_eq!(got, Err(e), "{input}"),
            }
        }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::sha256(b"").to_string(), EMPTY);
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn verifier_accepts_chunked_content() {
        let data = b"hello, ferry";
        let mut v = Verifier::new(Digest::sha256(data), data.len() as u64);
        for chunk in data.chunks(5) {
            v.update(chunk).unwrap();
        }
        assert_eq!(v.bytes_seen(), 12);
        v.finish().unwrap();
    }

    #[test]
    fn verifier_rejects_bad_content() {
        let good = Digest::sha256(b"abc");
        let mut long = Verifier::new(good.clone(), 2);
        assert_eq!(
            long.update(b"abc"),
            Err(VerifyError::TooLong { digest: good.clone(), expected: 2, seen: 3 })
        );

        let mut short = Verifier::new(good.clone(), 4);
        short.update(b"abc").unwrap();
        assert_eq!(
            short.finish(),
            Err(VerifyError::TooShort { digest: good.clone(), expected: 4, actual: 3 })
        );

        let mut wrong = Verifier::new(good.clone(), 3);
        wrong.update(b"abd").unwrap();
        assert_eq!(
            wrong.finish(),
            Err(VerifyError::Mismatch { expected: good, actual: Digest::sha256(b"abd") })
        );
    }

    #[test]
    fn serde_round_trip() {
        let d: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert!(serde_json::from_str::<Digest>("\"sha256:nope\"").is_err());
    }
}
