//! The on-disk format, version 1: what a line is, what is hashed and what is signed.
//!
//! A record line is exactly
//! `{"seq":N,"prev":"<64 hex>","hash":"<64 hex>","event":<event JSON>}` and `\n`, with `N` in
//! decimal without leading zeros and lower-case hex. It is parsed by position, not by a JSON
//! parser, so there is one encoding per record and the event's bytes are hashed exactly as
//! written (no canonicalisation of the caller's JSON is needed or attempted):
//!
//! `hash = SHA-256("coffer-audit-record-v1\0" ‖ seq as u64 big-endian ‖ prev (32 bytes) ‖ event bytes)`
//!
//! where `prev` is the previous record's `hash` (32 zero bytes before the first record of the
//! log, or the anchor's `prev_hash` after retention pruned the beginning).
//!
//! A digest line is `{"digest":{"first_seq":A,"last_seq":B,"last_hash":"<hex>","time_ms":T,
//! "key_id":"<hex>","signature":"<128 hex>"}}` (no spaces, fields in this order; any other
//! spelling is rejected, so a digest too has one encoding), with the Ed25519 signature over
//!
//! `"coffer-audit-digest-v1\0" ‖ A ‖ B ‖ last_hash ‖ T` (integers big-endian, T as i64).
//!
//! The head file is a copy of the latest durable digest; the anchor file
//! `{"anchor":{"next_seq":S,"prev_hash":"<hex>","time_ms":T,"key_id":…,"signature":…}}` is
//! signed over `"coffer-audit-anchor-v1\0" ‖ S ‖ prev_hash ‖ T`.

use serde::{Deserialize, Serialize};

use crate::key::{AuditKey, AuditPublicKey, SIGNATURE_LEN};
use crate::{AuditError, Hash};

/// The `prev` of the first record of a log that was never pruned.
pub(crate) const GENESIS_PREV: Hash = [0u8; 32];

const RECORD_DOMAIN: &[u8] = b"coffer-audit-record-v1\0";
const DIGEST_DOMAIN: &[u8] = b"coffer-audit-digest-v1\0";
const ANCHOR_DOMAIN: &[u8] = b"coffer-audit-anchor-v1\0";

/// The chain hash of one record. `scratch` is reused between calls to avoid an allocation.
pub(crate) fn record_hash(seq: u64, prev: &Hash, event: &[u8], scratch: &mut Vec<u8>) -> Hash {
    scratch.clear();
    scratch.extend_from_slice(RECORD_DOMAIN);
    scratch.extend_from_slice(&seq.to_be_bytes());
    scratch.extend_from_slice(prev);
    scratch.extend_from_slice(event);
    coffer_crypto::sha256(scratch)
}

/// Appends one record line, `\n` included, to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, prev: &Hash, hash: &Hash, event: &[u8]) {
    out.extend_from_slice(b"{\"seq\":");
    push_decimal(out, seq);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(coffer_crypto::hex(prev).as_bytes());
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(coffer_crypto::hex(hash).as_bytes());
    out.extend_from_slice(b"\",\"event\":");
    out.extend_from_slice(event);
    out.extend_from_slice(b"}\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A record line as parsed; `event` borrows the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordLine<'a> {
    pub seq: u64,
    pub prev: Hash,
    pub hash: Hash,
    pub event: &'a [u8],
}

impl RecordLine<'_> {
    /// Whether `hash` is the hash of the record's own content.
    pub(crate) fn hash_matches(&self, scratch: &mut Vec<u8>) -> bool {
        record_hash(self.seq, &self.prev, self.event, scratch) == self.hash
    }
}

/// One line of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Record(RecordLine<'a>),
    Digest(Digest),
}

/// Parses one line (without its `\n`); `None` when it is neither a record nor a digest in the
/// one accepted encoding.
pub(crate) fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    if let Some(rest) = line.strip_prefix(b"{\"seq\":") {
        return parse_record(rest).map(Line::Record);
    }
    if line.starts_with(b"{\"digest\":") {
        return Digest::from_json(line).map(Line::Digest);
    }
    None
}

fn parse_record(rest: &[u8]) -> Option<RecordLine<'_>> {
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let (digits, rest) = rest.split_at(end);
    let seq = parse_decimal(digits)?;
    let rest = rest.strip_prefix(b",\"prev\":\"")?;
    let (prev_hex, rest) = rest.split_at_checked(64)?;
    let rest = rest.strip_prefix(b"\",\"hash\":\"")?;
    let (hash_hex, rest) = rest.split_at_checked(64)?;
    let rest = rest.strip_prefix(b"\",\"event\":")?;
    let event = rest.strip_suffix(b"}")?;
    if event.is_empty() {
        return None;
    }
    Some(RecordLine {
        seq,
        prev: decode_hex_array(prev_hex)?,
        hash: decode_hex_array(hash_hex)?,
        event,
    })
}

/// Decimal without sign or leading zeros, within u64.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Strict lower-case hex into a fixed-size array (upper case is rejected so that every value
/// has a single spelling).
pub(crate) fn decode_hex_array<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A signed statement that the records `first_seq..=last_seq` exist and that the last of them
/// has hash `last_hash` (which, through the chain, commits to every record before it). Digests
/// are written into the log every N records or T seconds and at each segment rotation; the
/// latest durable one is also the head file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The first record this digest covers (the previous digest's `last_seq + 1`).
    pub first_seq: u64,
    /// The last record it covers.
    pub last_seq: u64,
    /// That record's hash.
    pub last_hash: Hash,
    /// When it was signed, Unix milliseconds.
    pub time_ms: i64,
    /// The signing key's [`AuditPublicKey::key_id`].
    pub key_id: String,
    /// Ed25519 signature over `"coffer-audit-digest-v1\0" ‖ first_seq ‖ last_seq ‖ last_hash ‖
    /// time_ms` (integers big-endian, eight bytes each).
    pub signature: [u8; SIGNATURE_LEN],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestWire {
    digest: DigestBody,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestBody {
    first_seq: u64,
    last_seq: u64,
    last_hash: String,
    time_ms: i64,
    key_id: String,
    signature: String,
}

impl Digest {
    pub(crate) fn sign(
        key: &AuditKey,
        first_seq: u64,
        last_seq: u64,
        last_hash: Hash,
        time_ms: i64,
    ) -> Result<Self, AuditError> {
        let signature = key.sign(&digest_message(first_seq, last_seq, &last_hash, time_ms))?;
        Ok(Self {
            first_seq,
            last_seq,
            last_hash,
            time_ms,
            key_id: key.public_key().key_id(),
            signature,
        })
    }

    /// Whether `key` signed this digest (and it names that key).
    #[must_use]
    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        self.key_id == key.key_id()
            && key.verify(
                &digest_message(self.first_seq, self.last_seq, &self.last_hash, self.time_ms),
                &self.signature,
            )
    }

    /// The digest's line, `{"digest":{…}}`, without the trailing newline.
    #[must_use]
    pub fn to_json(&self) -> String {
        let wire = DigestWire {
            digest: DigestBody {
                first_seq: self.first_seq,
                last_seq: self.last_seq,
                last_hash: coffer_crypto::hex(&self.last_hash),
                time_ms: self.time_ms,
                key_id: self.key_id.clone(),
                signature: coffer_crypto::hex(&self.signature),
            },
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Parses a digest line (or the head file's content) in its one accepted encoding.
    #[must_use]
    pub fn from_json(text: &[u8]) -> Option<Self> {
        let wire: DigestWire = serde_json::from_slice(text).ok()?;
        let body = wire.digest;
        let digest = Self {
            first_seq: body.first_seq,
            last_seq: body.last_seq,
            last_hash: decode_hex_array(body.last_hash.as_bytes())?,
            time_ms: body.time_ms,
            key_id: body.key_id,
            signature: decode_hex_array(body.signature.as_bytes())?,
        };
        // One spelling only: re-encoding must give the same bytes back.
        (digest.to_json().as_bytes() == text).then_some(digest)
    }
}

fn digest_message(first_seq: u64, last_seq: u64, last_hash: &Hash, time_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DIGEST_DOMAIN.len() + 56);
    m.extend_from_slice(DIGEST_DOMAIN);
    m.extend_from_slice(&first_seq.to_be_bytes());
    m.extend_from_slice(&last_seq.to_be_bytes());
    m.extend_from_slice(last_hash);
    m.extend_from_slice(&time_ms.to_be_bytes());
    m
}

/// Where the retained log begins after retention pruned older segments: the first retained
/// record must have `seq == next_seq` and `prev == prev_hash`. Signed, so an attacker cannot
/// move the start of the log forward (deleting the oldest retained records) without detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The seq of the first retained record.
    pub next_seq: u64,
    /// The hash of the last pruned record (the first retained record's `prev`).
    pub prev_hash: Hash,
    /// When it was signed, Unix milliseconds.
    pub time_ms: i64,
    /// The signing key's id.
    pub key_id: String,
    /// Ed25519 signature over `"coffer-audit-anchor-v1\0" ‖ next_seq ‖ prev_hash ‖ time_ms`.
    pub signature: [u8; SIGNATURE_LEN],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorWire {
    anchor: AnchorBody,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorBody {
    next_seq: u64,
    prev_hash: String,
    time_ms: i64,
    key_id: String,
    signature: String,
}

impl Anchor {
    pub(crate) fn sign(
        key: &AuditKey,
        next_seq: u64,
        prev_hash: Hash,
        time_ms: i64,
    ) -> Result<Self, AuditError> {
        let signature = key.sign(&anchor_message(next_seq, &prev_hash, time_ms))?;
        Ok(Self {
            next_seq,
            prev_hash,
            time_ms,
            key_id: key.public_key().key_id(),
            signature,
        })
    }

    /// Whether `key` signed this anchor.
    #[must_use]
    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        self.key_id == key.key_id()
            && key.verify(
                &anchor_message(self.next_seq, &self.prev_hash, self.time_ms),
                &self.signature,
            )
    }

    pub(crate) fn to_json(&self) -> String {
        let wire = AnchorWire {
            anchor: AnchorBody {
                next_seq: self.next_seq,
                prev_hash: coffer_crypto::hex(&self.prev_hash),
                time_ms: self.time_ms,
                key_id: self.key_id.clone(),
                signature: coffer_crypto::hex(&self.signature),
            },
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    pub(crate) fn from_json(text: &[u8]) -> Option<Self> {
        let wire: AnchorWire = serde_json::from_slice(text).ok()?;
        let body = wire.anchor;
        let anchor = Self {
            next_seq: body.next_seq,
            prev_hash: decode_hex_array(body.prev_hash.as_bytes())?,
            time_ms: body.time_ms,
            key_id: body.key_id,
            signature: decode_hex_array(body.signature.as_bytes())?,
        };
        (anchor.to_json().as_bytes() == text).then_some(anchor)
    }
}

fn anchor_message(next_seq: u64, prev_hash: &Hash, time_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(ANCHOR_DOMAIN.len() + 48);
    m.extend_from_slice(ANCHOR_DOMAIN);
    m.extend_from_slice(&next_seq.to_be_bytes());
    m.extend_from_slice(prev_hash);
    m.extend_from_slice(&time_ms.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn record_line_round_trips() {
        let mut scratch = Vec::new();
        let event = br#"{"eventName":"GetSecretValue"}"#;
        let hash = record_hash(42, &GENESIS_PREV, event, &mut scratch);
        let mut line = Vec::new();
        encode_record(&mut line, 42, &GENESIS_PREV, &hash, event);
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        let Some(Line::Record(r)) = parse_line(body) else {
            panic!("not a record")
        };
        assert_eq!(
            (r.seq, r.prev, r.hash, r.event),
            (42, GENESIS_PREV, hash, &event[..])
        );
        assert!(r.hash_matches(&mut scratch));
        // The line is also plain JSON for jq and friends.
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["seq"], 42);
    }

    #[test]
    fn non_canonical_spellings_are_rejected() {
        let h = "00".repeat(32);
        let ok = format!(r#"{{"seq":7,"prev":"{h}","hash":"{h}","event":{{}}}}"#);
        assert!(parse_line(ok.as_bytes()).is_some());
        for bad in [
            format!(r#"{{"seq":07,"prev":"{h}","hash":"{h}","event":{{}}}}"#),
            format!(r#"{{"seq": 7,"prev":"{h}","hash":"{h}","event":{{}}}}"#),
            format!(
                r#"{{"seq":7,"prev":"{}","hash":"{h}","event":{{}}}}"#,
                "AA".repeat(32)
            ),
            format!(r#"{{"seq":7,"prev":"{h}","hash":"{h}","event":}}"#),
            format!(r#"{{"seq":99999999999999999999,"prev":"{h}","hash":"{h}","event":{{}}}}"#),
            format!(r#"{{"seq":7,"prev":"{h}","hash":"{h}","event":{{}}}}x"#),
            String::new(),
            "{\"digest\":{}}".to_owned(),
        ] {
            assert_eq!(parse_line(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn digest_and_anchor_round_trip_and_verify() {
        let key = AuditKey::generate().unwrap();
        let d = Digest::sign(&key, 1, 10, [7u8; 32], 1_700_000_000_000).unwrap();
        let json = d.to_json();
        assert!(!json.contains(' '));
        let back = Digest::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, d);
        assert!(back.verify(&key.public_key()));
        let spaced = json.replacen(':', ": ", 1);
        assert_eq!(Digest::from_json(spaced.as_bytes()), None);
        let mut forged = d.clone();
        forged.last_seq = 11;
        assert!(!forged.verify(&key.public_key()));

        let a = Anchor::sign(&key, 11, [9u8; 32], 5).unwrap();
        let back = Anchor::from_json(a.to_json().as_bytes()).unwrap();
        assert!(back.verify(&key.public_key()));
        assert!(
            !AuditKey::generate()
                .map(|k| back.verify(&k.public_key()))
                .unwrap()
        );
    }
}
