//! Percent-encoding the way SigV4 wants it, and the decoding that undoes a client's encoding.
//!
//! SigV4 encodes every byte except the RFC 3986 unreserved set (`A-Z a-z 0-9 - _ . ~`), with
//! upper-case hex digits ("URI-encode each byte … use uppercase hexadecimal characters", AWS
//! "Create a canonical request for Signature Version 4"). Works on bytes, never on `char`s, so a
//! value that is not UTF-8 is still encoded faithfully instead of being rejected or replaced.

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Appends the SigV4 encoding of `bytes` to `out`; `/` is kept as is when `keep_slash` (paths).
pub(crate) fn uri_encode_into(bytes: &[u8], keep_slash: bool, out: &mut String) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

/// The SigV4 encoding of `bytes` (query keys and values: `/` is encoded too).
pub(crate) fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    uri_encode_into(bytes, false, &mut out);
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a query-string component as `application/x-www-form-urlencoded`: `+` is a space and a
/// `%` not followed by two hex digits stays a literal `%`. This is what the official Rust signer
/// (`aws-sigv4`, via `form_urlencoded::parse`) does with the query before re-encoding it, so a
/// request it signed canonicalises to the same bytes here.
pub(crate) fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value);
                let lo = input.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Splits a raw query string into decoded `(key, value)` pairs, in order. Empty pieces (`a=1&&b=2`)
/// are skipped and a piece without `=` has an empty value, as `form_urlencoded::parse` does.
pub(crate) fn parse_query(raw: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw.as_bytes()
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    piece.get(..eq).unwrap_or_default(),
                    piece.get(eq + 1..).unwrap_or_default(),
                ),
                None => (piece, &[][..]),
            };
            (form_decode(key), form_decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved_with_upper_case_hex() {
        assert_eq!(uri_encode(b"AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(uri_encode(b"a b/c+d=e&f*%"), "a%20b%2Fc%2Bd%3De%26f%2A%25");
        assert_eq!(uri_encode("é".as_bytes()), "%C3%A9");
        assert_eq!(uri_encode(&[0xff, 0x00]), "%FF%00");
        let mut path = String::new();
        uri_encode_into(b"/a b/%2F", true, &mut path);
        assert_eq!(path, "/a%20b/%252F");
    }

    #[test]
    fn form_decoding_keeps_broken_escapes_literal() {
        assert_eq!(form_decode(b"a+b%20c"), b"a b c");
        assert_eq!(form_decode(b"%zz%4"), b"%zz%4");
        assert_eq!(form_decode(b"%"), b"%");
        assert_eq!(form_decode(b"%c3%A9"), "é".as_bytes());
    }

    #[test]
    fn query_pieces_split_on_first_equals() {
        let pairs = parse_query("b=2&&a&c=x=y&=v");
        assert_eq!(
            pairs,
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"a".to_vec(), Vec::new()),
                (b"c".to_vec(), b"x=y".to_vec()),
                (Vec::new(), b"v".to_vec()),
            ]
        );
    }
}
