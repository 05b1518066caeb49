//! One-time passwords for MFA devices: HOTP (RFC 4226) and TOTP (RFC 6238) over HMAC-SHA1, the
//! algorithm every authenticator app implements and the one AWS virtual MFA devices use, and
//! the RFC 4648 Base32 alphabet in which apps read a device's seed.
//!
//! Pure: time arrives as an argument (the caller's injected clock), nothing is logged, and a
//! code is compared in constant time.

use aws_lc_rs::hmac;

use crate::constant_time_eq;

/// The TOTP time step, X in RFC 6238 §4 (30 seconds: the default, and what apps assume).
pub const TOTP_STEP_MILLIS: i64 = 30_000;

/// The digits of a code AWS accepts (`authenticationCodeType`: six decimal digits).
pub const TOTP_DIGITS: u32 = 6;

/// The HOTP value for `counter` (RFC 4226 §5.3: HMAC-SHA1, dynamic truncation, the low
/// `digits` decimal digits), zero-padded to `digits` characters. `digits` is clamped to 6–9.
#[must_use]
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let digits = digits.clamp(6, 9);
    let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = hmac::sign(&k, &counter.to_be_bytes());
    let hs = tag.as_ref();
    // Dynamic truncation: the low nibble of the last byte picks four bytes, top bit cleared.
    let offset = usize::from(hs.last().copied().unwrap_or(0) & 0x0f);
    let word = hs
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]));
    let value = word % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The TOTP counter (time step number, RFC 6238 §4.2 with T0 = 0) at `unix_millis`; `None`
/// before the epoch.
#[must_use]
pub fn totp_counter(unix_millis: i64) -> Option<u64> {
    u64::try_from(unix_millis.div_euclid(TOTP_STEP_MILLIS)).ok()
}

/// Whether `code` is the six-digit HOTP value of `counter`, compared in constant time.
#[must_use]
pub fn hotp_matches(key: &[u8], counter: u64, code: &str) -> bool {
    constant_time_eq(hotp(key, counter, TOTP_DIGITS).as_bytes(), code.as_bytes())
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 §6 Base32, with `=` padding to a multiple of eight characters (none is needed
/// when the input is a multiple of five bytes, as MFA seeds are).
#[must_use]
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Characters that carry input bits: ceil(8 * len / 5).
        let used = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < used {
                let index = (bits >> (35 - 5 * i)) & 0x1f;
                out.push(char::from(BASE32_ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes RFC 4648 Base32 (upper or lower case, padding optional); `None` if `text` is not
/// Base32.
#[must_use]
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 5 / 8);
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for c in trimmed.bytes() {
        let v = BASE32_ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())?;
        acc = (acc << 5) | v as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be padding zeros of a valid length (RFC 4648 §6).
    if bits >= 5 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4226 Appendix D: the secret "12345678901234567890", counters 0–9.
    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let key = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(key, counter as u64, 6), *code, "counter {counter}");
            assert!(hotp_matches(key, counter as u64, code));
        }
        assert!(!hotp_matches(key, 0, "755225"));
        assert!(!hotp_matches(key, 0, "75522"));
        assert!(!hotp_matches(key, 0, ""));
    }

    /// RFC 6238 Appendix B, the SHA-1 rows (eight digits, the 20-byte ASCII seed).
    #[test]
    fn totp_matches_rfc6238_appendix_b() {
        let key = b"12345678901234567890";
        let rows: [(i64, u64, &str); 6] = [
            (59, 0x1, "94287082"),
            (1_111_111_109, 0x0235_23EC, "07081804"),
            (1_111_111_111, 0x0235_23ED, "14050471"),
            (1_234_567_890, 0x0273_EF07, "89005924"),
            (2_000_000_000, 0x03F9_40AA, "69279037"),
            (20_000_000_000, 0x27BC_86AA, "65353130"),
        ];
        for (secs, counter, code) in rows {
            assert_eq!(totp_counter(secs * 1000), Some(counter), "T at {secs}");
            assert_eq!(hotp(key, counter, 8), code, "code at {secs}");
        }
        // The six-digit code is the low six digits of the same value.
        assert_eq!(hotp(key, 1, 6), "287082");
    }

    #[test]
    fn totp_counter_steps_every_thirty_seconds() {
        assert_eq!(totp_counter(0), Some(0));
        assert_eq!(totp_counter(29_999), Some(0));
        assert_eq!(totp_counter(30_000), Some(1));
        assert_eq!(totp_counter(-1), None);
    }

    /// RFC 4648 §10 test vectors.
    #[test]
    fn base32_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(
                base32_decode(&encoded.to_lowercase().replace('=', "")).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(base32_decode("MZXW6YQ1"), None);
        assert_eq!(base32_decode("MZXW6YQ!"), None);
        // "MZ" leaves two non-zero bits: not a canonical encoding.
        assert_eq!(base32_decode("MZ"), None);
    }

    #[test]
    fn a_forty_byte_seed_is_sixty_four_characters() {
        let seed = [0xa5u8; 40];
        let text = base32_encode(&seed);
        assert_eq!(text.len(), 64);
        assert!(!text.contains('='));
        assert_eq!(base32_decode(&text).unwrap(), seed);
    }
}
