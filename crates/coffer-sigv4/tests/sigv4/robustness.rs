//! Arbitrary input never panics: random `Authorization` headers, dates, paths, queries and header
//! bytes (including obs-text, which is not UTF-8), and hand-built claims with nonsense fields.

use coffer_sigv4::{
    Credentials, SignatureClaim, SigningParams, derive_signing_key, parse_amz_date, parse_claim,
    parse_http_date, sign, verify,
};

use crate::{AKID, SECRET, T0};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }

    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len())]
    }

    /// Bytes assembled from meaningful fragments and random single bytes that are legal in a
    /// header value (visible ASCII, space, tab, obs-text).
    fn header_bytes(&mut self, fragments: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..self.below(12) {
            if self.below(3) == 0 {
                let b = u8::try_from(self.below(256)).unwrap();
                if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 {
                    out.push(b);
                }
            } else {
                out.extend_from_slice(self.pick(fragments));
            }
        }
        out
    }

    /// A SigV4-shaped header where each piece is, at random, right or garbage.
    fn authorization(&mut self) -> Vec<u8> {
        if self.below(3) == 0 {
            return self.header_bytes(AUTH_FRAGMENTS);
        }
        let piece = |rng: &mut Self, good: &[u8]| {
            if rng.below(4) == 0 {
                rng.header_bytes(AUTH_FRAGMENTS)
            } else {
                good.to_vec()
            }
        };
        [
            piece(self, b"AWS4-HMAC-SHA256"),
            b" Credential=".to_vec(),
            piece(self, b"AKIDEXAMPLE/20150830"),
            b"/".to_vec(),
            piece(self, b"us-east-1/secretsmanager"),
            b"/".to_vec(),
            piece(self, b"aws4_request"),
            b", SignedHeaders=".to_vec(),
            piece(self, b"host;x-amz-date"),
            b", Signature=".to_vec(),
            piece(self, b"0123456789abcdef"),
        ]
        .concat()
    }

    fn date(&mut self) -> Vec<u8> {
        if self.below(2) == 0 {
            b"20150830T123600Z".to_vec()
        } else {
            self.header_bytes(DATE_FRAGMENTS)
        }
    }

    fn uri_text(&mut self, fragments: &[&[u8]]) -> String {
        let mut out = String::from("/");
        for _ in 0..self.below(10) {
            out.push_str(std::str::from_utf8(self.pick(fragments)).unwrap());
        }
        out
    }
}

const AUTH_FRAGMENTS: &[&[u8]] = &[
    b"AWS4-HMAC-SHA256",
    b"AWS4-",
    b" ",
    b", ",
    b",",
    b"=",
    b"Credential=",
    b"SignedHeaders=",
    b"Signature=",
    b"AKIDEXAMPLE",
    b"/",
    b"20150830",
    b"us-east-1",
    b"secretsmanager",
    b"aws4_request",
    b"host",
    b";",
    b"x-amz-date",
    b":authority",
    b"\xc3\xa9",
    b"\xff",
    b"0123456789abcdef",
];

const DATE_FRAGMENTS: &[&[u8]] = &[
    b"2015",
    b"0830",
    b"T",
    b"1236",
    b"00",
    b"Z",
    b"Sun, ",
    b" GMT",
    b"Aug",
    b" ",
    b":",
    b"\xe2\x9c\x93",
    b"99",
];

const URI_FRAGMENTS: &[&[u8]] = &[
    b"a",
    b"/",
    b".",
    b"..",
    b"%",
    b"%2F",
    b"%zz",
    b"%E2%9C%93",
    b"%FF",
    b"?",
    b"&",
    b"=",
    b"+",
    b"~",
    b"X-Amz-Algorithm=",
    b"X-Amz-Signature",
    b"X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs%2Faws4_request",
    b"X-Amz-Date=20150830T123600Z",
    b"X-Amz-SignedHeaders=host",
    b"X-Amz-Expires=",
    b"-1",
    b"9999999999999999999999",
];

#[test]
fn random_requests_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let key = derive_signing_key(SECRET.as_bytes(), "20150830", "us-east-1", "secretsmanager");
    let mut parsed = 0;
    for _ in 0..20_000 {
        let uri = rng.uri_text(URI_FRAGMENTS);
        let Ok(uri) = uri.parse::<http::Uri>() else {
            continue;
        };
        let mut builder = http::Request::builder().method("POST").uri(uri);
        if rng.below(4) != 0 {
            builder = builder.header(
                "authorization",
                http::HeaderValue::from_bytes(&rng.authorization()).unwrap(),
            );
        }
        for name in ["x-amz-date", "date"] {
            if rng.below(2) == 0 {
                builder = builder.header(name, http::HeaderValue::from_bytes(&rng.date()).unwrap());
            }
        }
        if rng.below(2) == 0 {
            builder = builder.header(
                "host",
                http::HeaderValue::from_bytes(&rng.header_bytes(AUTH_FRAGMENTS)).unwrap(),
            );
        }
        if rng.below(3) == 0 {
            builder = builder.header(
                "x-amz-content-sha256",
                http::HeaderValue::from_bytes(&rng.header_bytes(AUTH_FRAGMENTS)).unwrap(),
            );
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        if let Ok(claim) = parse_claim(&parts) {
            parsed += 1;
            let err = verify(&parts, b"{}", &claim, &key, T0, Some("secretsmanager")).unwrap_err();
            assert!(!err.message().is_empty());
        }
    }
    // The generator reaches past parsing often enough for verification to be exercised.
    assert!(parsed > 300, "only {parsed} claims parsed");
}

#[test]
fn nonsense_claims_never_panic() {
    let mut rng = Rng(42);
    let key = derive_signing_key(SECRET.as_bytes(), "20150830", "us-east-1", "secretsmanager");
    let (parts, ()) = http::Request::builder()
        .uri("/")
        .header("host", "h")
        .body(())
        .unwrap()
        .into_parts();
    let text =
        |rng: &mut Rng| String::from_utf8_lossy(&rng.header_bytes(DATE_FRAGMENTS)).into_owned();
    for _ in 0..5_000 {
        let claim = SignatureClaim {
            access_key_id: text(&mut rng),
            date: text(&mut rng),
            region: text(&mut rng),
            service: text(&mut rng),
            terminator: text(&mut rng),
            signed_headers: vec![text(&mut rng), "host".to_owned()],
            signature: text(&mut rng),
            amz_date: text(&mut rng),
            security_token: None,
            expires: Some(rng.next()),
            presigned: rng.below(2) == 0,
        };
        let _ = verify(
            &parts,
            b"",
            &claim,
            &key,
            i64::try_from(rng.next() >> 1).unwrap(),
            None,
        );
        let _ = parse_amz_date(&claim.amz_date);
        let _ = parse_http_date(&claim.date);
    }
}

#[test]
fn signing_odd_requests_never_panics() {
    let mut rng = Rng(7);
    let credentials = Credentials::new(AKID, SECRET, Some("tok\u{e9}n".to_owned()));
    let params = SigningParams::new(&credentials, "us-east-1", "secretsmanager");
    for _ in 0..2_000 {
        let Ok(uri) = rng.uri_text(URI_FRAGMENTS).parse::<http::Uri>() else {
            continue;
        };
        let (mut parts, ()) = http::Request::builder()
            .uri(uri)
            .header(
                "x-odd",
                http::HeaderValue::from_bytes(&rng.header_bytes(AUTH_FRAGMENTS)).unwrap(),
            )
            .body(())
            .unwrap()
            .into_parts();
        // No authority and no Host header, or a token that is not a valid header value: refused, not a panic.
        let err = sign(&mut parts, b"", &params, T0).unwrap_err();
        assert_eq!(err.aws_code(), "InternalFailure");
    }
    let ok = Credentials::new(AKID, SECRET, None);
    for now in [i64::MIN, -62_167_219_201, 253_402_300_800, i64::MAX] {
        let (mut parts, ()) = http::Request::builder()
            .uri("https://h/")
            .body(())
            .unwrap()
            .into_parts();
        assert!(
            sign(&mut parts, b"", &SigningParams::new(&ok, "r", "s"), now).is_err(),
            "{now}"
        );
    }
}
