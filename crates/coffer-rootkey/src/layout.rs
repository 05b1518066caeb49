//! The envelope v1 byte layout, for keys whose AES-GCM runs outside coffer-crypto (inside a
//! PKCS#11 token):
//! `0x01 | label_len | label | nonce (12) | ciphertext | tag (16)`, with the AEAD's associated
//! data = header ‖ u64-BE(len(aad)) ‖ aad.
//!
//! Owns nothing but that layout; it must stay byte-for-byte what `coffer_crypto::SymmetricKey`
//! writes (a test seals with one and opens with the other), so `envelope_key_id` and every
//! reader of headers work on token-sealed blobs too. Never does cryptography itself.

use coffer_crypto::ENVELOPE_VERSION;

use crate::RootKeyError;

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// `0x01 | label_len | label`.
pub(crate) fn header(label: &str) -> Result<Vec<u8>, RootKeyError> {
    let id = label.as_bytes();
    let len = u8::try_from(id.len()).map_err(|_| RootKeyError::Seal)?;
    let mut h = Vec::with_capacity(2 + id.len());
    h.push(ENVELOPE_VERSION);
    h.push(len);
    h.extend_from_slice(id);
    Ok(h)
}

/// The AEAD's associated data: the header, then the caller's AAD length-prefixed so that
/// (header, aad) pairs cannot collide. Same as coffer-crypto's envelope.
pub(crate) fn joined_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(header.len() + 8 + aad.len());
    v.extend_from_slice(header);
    v.extend_from_slice(&(aad.len() as u64).to_be_bytes());
    v.extend_from_slice(aad);
    v
}

pub(crate) struct Parts<'a> {
    pub header: &'a [u8],
    pub label: &'a str,
    pub nonce: &'a [u8],
    /// Ciphertext followed by the tag.
    pub body: &'a [u8],
}

pub(crate) fn parse(blob: &[u8]) -> Result<Parts<'_>, RootKeyError> {
    let (&version, rest) = blob.split_first().ok_or(RootKeyError::Open)?;
    if version != ENVELOPE_VERSION {
        return Err(RootKeyError::Open);
    }
    let (&len, _) = rest.split_first().ok_or(RootKeyError::Open)?;
    let header_len = 2 + usize::from(len);
    if blob.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(RootKeyError::Open);
    }
    let (header, rest) = blob.split_at(header_len);
    let label = std::str::from_utf8(&header[2..]).map_err(|_| RootKeyError::Open)?;
    let (nonce, body) = rest.split_at(NONCE_LEN);
    Ok(Parts {
        header,
        label,
        nonce,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use coffer_crypto::SymmetricKey;

    fn aead(key: &SymmetricKey) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).unwrap())
    }

    #[test]
    fn coffer_crypto_blobs_open_with_this_layout() {
        let key = SymmetricKey::generate().unwrap();
        let blob = key.seal("root/7", b"value", b"ctx").unwrap();
        let p = parse(&blob).unwrap();
        assert_eq!(p.label, "root/7");
        assert_eq!(p.header, header("root/7").unwrap().as_slice());
        let mut body = p.body.to_vec();
        let plain = aead(&key)
            .open_in_place(
                Nonce::try_assume_unique_for_key(p.nonce).unwrap(),
                Aad::from(joined_aad(p.header, b"ctx")),
                &mut body,
            )
            .unwrap();
        assert_eq!(plain, b"value");
    }

    #[test]
    fn blobs_in_this_layout_open_with_coffer_crypto() {
        let key = SymmetricKey::generate().unwrap();
        let h = header("root/2").unwrap();
        let nonce = [9u8; NONCE_LEN];
        let mut body = b"value".to_vec();
        aead(&key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(joined_aad(&h, b"ctx")),
                &mut body,
            )
            .unwrap();
        let blob = [h.as_slice(), &nonce, &body].concat();
        assert_eq!(coffer_crypto::envelope_key_id(&blob).unwrap(), "root/2");
        assert_eq!(key.open(&blob, b"ctx").unwrap().expose(), b"value");
        assert!(key.open(&blob, b"other").is_err());
    }

    #[test]
    fn short_or_foreign_blobs_are_refused() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[2, 0]).is_err());
        assert!(parse(&[1, 4, b'r', b'o']).is_err());
        assert!(parse(&[1, 0, 0, 0]).is_err());
        assert!(header(&"x".repeat(256)).is_err());
    }
}
