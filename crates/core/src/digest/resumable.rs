//! A sha256 whose running state is data: saved after one request, resumed in another
//! process. Upload sessions keep it in storage, so whichever replica receives the next
//! chunk (or the commit) goes on hashing without reading back what came before.
//!
//! The state is FIPS 180-4's: the eight working words `H`, the message length so far,
//! and the bytes of the unfinished 64-byte block. Blocks go through `sha2`'s own
//! compression function, so the result is sha2's to the bit.

use sha2::digest::generic_array::GenericArray;

use super::{to_hex, Algorithm, Digest};

/// FIPS 180-4 §5.3.3: "the initial hash value, H(0), shall consist of the following eight
/// 32-bit words".
const H0: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const BLOCK: usize = 64;

/// An incremental sha256 that can be saved ([`ResumableSha256::save`]) and resumed
/// ([`ResumableSha256::resume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSha256 {
    h: [u32; 8],
    /// Bytes hashed so far, the unfinished block included.
    length: u64,
    /// The unfinished block: fewer than 64 bytes.
    pending: Vec<u8>,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 { h: H0, length: 0, pending: Vec::with_capacity(BLOCK) }
    }
}

impl ResumableSha256 {
    /// The state before any byte.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Hashes the next chunk; chunks may have any size.
    pub fn update(&mut self, mut chunk: &[u8]) {
        self.length += chunk.len() as u64;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            sha2::compress256(&mut self.h, &[*GenericArray::from_slice(&self.pending)]);
            self.pending.clear();
        }
        let whole = chunk.len() - chunk.len() % BLOCK;
        let blocks: Vec<_> =
            chunk[..whole].chunks_exact(BLOCK).map(|b| *GenericArray::from_slice(b)).collect();
        sha2::compress256(&mut self.h, &blocks);
        self.pending.extend_from_slice(&chunk[whole..]);
    }

    /// The digest of everything fed so far. FIPS 180-4 §5.1.1: append the bit "1", zeros,
    /// and the message length in bits as a 64-bit big-endian number.
    pub fn finish(mut self) -> Digest {
        let bits = self.length.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.pending);
        tail.push(0x80);
        let padded = if tail.len() + 8 <= BLOCK { BLOCK } else { 2 * BLOCK };
        tail.resize(padded - 8, 0);
        tail.extend_from_slice(&bits.to_be_bytes());
        let blocks: Vec<_> = tail.chunks_exact(BLOCK).map(|b| *GenericArray::from_slice(b)).collect();
        sha2::compress256(&mut self.h, &blocks);
        let bytes: Vec<u8> = self.h.iter().flat_map(|w| w.to_be_bytes()).collect();
        Digest { algorithm: Algorithm::Sha256, hex: to_hex(&bytes) }
    }

    /// The state as text: `H` (64 hex digits), the length (16), the unfinished block.
    pub fn save(&self) -> String {
        let mut bytes: Vec<u8> = self.h.iter().flat_map(|w| w.to_be_bytes()).collect();
        bytes.extend_from_slice(&self.length.to_be_bytes());
        bytes.extend_from_slice(&self.pending);
        to_hex(&bytes)
    }

    /// A state [`ResumableSha256::save`] wrote; `None` for anything else.
    pub fn resume(saved: &str) -> Option<ResumableSha256> {
        if saved.len() % 2 != 0 || !saved.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes: Vec<u8> = (0..saved.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&saved[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        if bytes.len() < 40 || bytes.len() >= 40 + BLOCK {
            return None;
        }
        let mut h = [0u32; 8];
        for (word, b) in h.iter_mut().zip(bytes[..32].chunks_exact(4)) {
            *word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        let length = u64::from_be_bytes(bytes[32..40].try_into().ok()?);
        let pending = bytes[40..].to_vec();
        if length % BLOCK as u64 != pending.len() as u64 {
            return None;
        }
        Some(ResumableSha256 { h, length, pending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn matches_sha2_over_every_split_and_resume() {
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000] {
            let data = content(n);
            let expected = Digest::sha256(&data);
            for split in [0, 1, 7, 63, 64, 65, n / 2, n] {
                let split = split.min(n);
                let mut first = ResumableSha256::new();
                first.update(&data[..split]);
                let mut resumed = ResumableSha256::resume(&first.save()).expect("resume");
                assert_eq!(resumed, first);
                resumed.update(&data[split..]);
                assert_eq!(resumed.length(), n as u64);
                assert_eq!(resumed.finish(), expected, "n={n} split={split}");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let data = content(300);
        let mut h = ResumableSha256::new();
        data.iter().for_each(|b| h.update(&[*b]));
        assert_eq!(h.finish(), Digest::sha256(&data));
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let mut h = ResumableSha256::new();
        h.update(b"abc");
        let saved = h.save();
        for bad in
            ["", "zz", &saved[..saved.len() - 1], &saved[..78], &format!("{saved}00"), &"0".repeat(80 + 128)]
        {
            assert_eq!(ResumableSha256::resume(bad), None, "{bad}");
        }
    }
}
