//! The AWS query protocol (IAM now, STS next): a form-encoded body with `Action` and
//! `Version`, lists as `Name.member.N`, and XML responses wrapped in `<ActionResponse>` with
//! the result in `<ActionResult>`; errors are `<ErrorResponse>` with the HTTP status of the
//! error's model shape.

use bytes::Bytes;

use crate::error::ApiError;

/// The decoded parameters of a query-protocol request.
#[derive(Debug, Default)]
pub struct Form {
    params: Vec<(String, String)>,
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn decode_component(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h * 16 + l),
                    _ => return Err(malformed_query()),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed_query())
}

fn malformed_query() -> ApiError {
    ApiError::new("MalformedQueryString", "The query string is malformed.")
}

impl Form {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let text = std::str::from_utf8(body).map_err(|_| malformed_query())?;
        let mut params = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((decode_component(k)?, decode_component(v)?));
        }
        Ok(Self { params })
    }

    /// Every `(name, value)` pair, in the order sent.
    #[must_use]
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required parameter; IAM's validation wording when it is absent.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            let member = lower_camel(name);
            ApiError::new(
                "ValidationError",
                format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
            )
        })
    }

    /// A list parameter `Name.member.1`, `Name.member.2`, … in order.
    #[must_use]
    pub fn list(&self, name: &str) -> Vec<String> {
        (1..)
            .map_while(|i| self.get(&format!("{name}.member.{i}")).map(str::to_string))
            .collect()
    }

    /// A list of key/value structures `Name.member.N.Key` / `Name.member.N.Value` (tags).
    #[must_use]
    pub fn pairs(&self, name: &str) -> Vec<(String, String)> {
        (1..)
            .map_while(|i| {
                let key = self.get(&format!("{name}.member.{i}.Key"))?;
                let value = self
                    .get(&format!("{name}.member.{i}.Value"))
                    .unwrap_or_default();
                Some((key.to_string(), value.to_string()))
            })
            .collect()
    }

    /// An integer parameter, if present.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::new(
                        "ValidationError",
                        format!("Invalid value for parameter {name}: {v} is not an integer"),
                    )
                })
            })
            .transpose()
    }
}

fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Escapes text for XML content.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A small XML builder for responses: elements with escaped text, nesting by closures.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self.0.push_str(&escape(value));
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn node(&mut self, name: &str, inner: impl FnOnce(&mut Xml)) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        inner(self);
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

pub use coffer_core::clock::iso8601;

/// RFC 3986 encoding, as IAM returns policy documents.
#[must_use]
pub fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The success envelope of `action`.
#[must_use]
pub fn success(
    action: &str,
    namespace: &str,
    result: Option<String>,
    request_id: &str,
) -> http::Response<Bytes> {
    let mut body = format!("<{action}Response xmlns=\"{namespace}\">");
    if let Some(result) = result {
        body.push_str(&format!("<{action}Result>{result}</{action}Result>"));
    }
    body.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    ));
    xml_response(200, body, request_id)
}

/// The `<ErrorResponse>` of a failed query-protocol request.
#[must_use]
pub fn failure(err: &ApiError, namespace: &str, request_id: &str) -> http::Response<Bytes> {
    let kind = if err.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        escape(err.code),
        escape(&err.message),
        escape(request_id)
    );
    xml_response(err.status, body, request_id)
}

fn xml_response(status: u16, body: String, request_id: &str) -> http::Response<Bytes> {
    let mut resp = http::Response::new(Bytes::from(body));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml"),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = Form::parse(b"Action=CreateUser&UserName=a%2Bb+c&Empty=&Path=%2Fteam%2F").unwrap();
        assert_eq!(f.get("Action"), Some("CreateUser"));
        assert_eq!(f.get("UserName"), Some("a+b c"));
        assert_eq!(f.get("Empty"), Some(""));
        assert_eq!(f.get("Path"), Some("/team/"));
        assert!(Form::parse(b"A=%zz").is_err());
        assert!(Form::parse(b"A=%4").is_err());
        assert!(Form::parse(&[0xff, b'=', b'1']).is_err());
        assert_eq!(f.required("Missing").unwrap_err().code, "ValidationError");
        let l = Form::parse(b"K.member.1=a&K.member.2=b&K.member.4=d&T.member.1.Key=k&T.member.1.Value=v&T.member.2.Key=x").unwrap();
        assert_eq!(l.list("K"), vec!["a", "b"]);
        assert_eq!(
            l.pairs("T"),
            vec![
                ("k".to_string(), "v".to_string()),
                ("x".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn dates_and_escaping() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;");
        assert_eq!(uri_encode("{\"A\": 1}"), "%7B%22A%22%3A%201%7D");
    }
}
