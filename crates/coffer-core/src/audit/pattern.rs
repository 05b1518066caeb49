//! Alert rule patterns: EventBridge-style content filters over one CloudTrail-format event.
//!
//! A pattern is a JSON object that mirrors the event's shape. Its leaves are arrays of
//! alternatives; a nested object descends into the event:
//!
//! ```json
//! {"eventName": ["GetSecretValue"],
//!  "errorCode": ["AccessDeniedException"],
//!  "requestParameters": {"secretId": [{"wildcard": "prod/*"}]}}
//! ```
//!
//! matches a denied `GetSecretValue` on any secret whose id starts with `prod/`. Every key of
//! an object must match (AND); one alternative of a leaf must match (OR).
//!
//! # What a leaf matches
//!
//! The event is read the way EventBridge reads it: the values at a path are every value
//! reached by following the keys, with arrays flattened at every step. So
//! `{"resources": {"ARN": [{"prefix": "arn:aws:secretsmanager:"}]}}` matches when any
//! element of `resources` has such an `ARN` (and two keys under `resources` may be satisfied
//! by different elements, as in EventBridge). A leaf matches when one of those values
//! satisfies one of the alternatives:
//!
//! | alternative | matches |
//! |---|---|
//! | `"text"`, `5`, `true` | that exact string, number (compared as a number) or boolean |
//! | `null` | a JSON `null` (not a missing member) |
//! | `{"prefix": "p"}`, `{"suffix": "s"}` | strings starting / ending with it; also `{"prefix": {"equals-ignore-case": "p"}}` |
//! | `{"wildcard": "prod/*"}` | strings matching it, `*` standing for any run of characters (`\*` is a literal star, `\\` a backslash) |
//! | `{"equals-ignore-case": "x"}` | strings equal to it ignoring case |
//! | `{"anything-but": "x" \| 5 \| ["x", "y"]}` | any present value other than those |
//! | `{"anything-but": {"prefix" \| "suffix" \| "wildcard" \| "equals-ignore-case": …}}` | any present value not matching that |
//! | `{"numeric": [">", 0, "<=", 5]}` | numbers within the bounds (one or two comparisons: `<`, `<=`, `=`, `>=`, `>`) |
//! | `{"exists": true}` / `{"exists": false}` | the member is present (with a non-object value) / missing |
//! | `{"cidr": "10.0.0.0/8"}` | IP address strings within the network (IPv4 or IPv6) |
//!
//! A missing member (or an empty array) has no values: only `{"exists": false}` matches it.
//! `anything-but` never matches a missing member.
//!
//! `{"$or": [pattern, pattern, …]}` may appear in any object: that object matches when its
//! other keys match and at least one of the listed patterns matches at the same place.
//!
//! # Examples
//!
//! | pattern | alerts on |
//! |---|---|
//! | `{"eventName": ["DeleteSecret"]}` | every secret deletion |
//! | `{"eventType": ["AwsServiceEvent"], "eventName": ["RotationFailed"]}` | failed rotations |
//! | `{"errorCode": [{"exists": true}], "eventSource": ["kms.amazonaws.com"]}` | failed KMS calls |
//! | `{"$or": [{"errorCode": ["AccessDeniedException"]}, {"userIdentity": {"type": ["Root"]}}]}` | denials or any root activity |

use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};

/// A pattern that cannot be used: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event pattern at {path}: {message}")]
pub struct PatternError {
    /// Where in the pattern, like `requestParameters.secretId[0]` (`the top level` for the
    /// pattern itself).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// A parsed EventBridge-style event pattern; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPattern {
    root: ObjectPattern,
}

impl EventPattern {
    /// Parses and checks a pattern (a JSON object).
    pub fn parse(pattern: &Value) -> Result<Self, PatternError> {
        let path = Path::default();
        let Value::Object(object) = pattern else {
            return Err(path.error(format!(
                "a pattern must be a JSON object like {{\"eventName\": [\"DeleteSecret\"]}}, not {}",
                describe(pattern)
            )));
        };
        Ok(Self {
            root: ObjectPattern::parse(object, &path)?,
        })
    }

    /// Whether `event` matches.
    #[must_use]
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(&[event])
    }
}

/// The keys of one pattern object.
#[derive(Debug, Clone, PartialEq)]
struct ObjectPattern {
    fields: Vec<(String, Field)>,
    /// `$or`: at least one must match too.
    any_of: Option<Vec<ObjectPattern>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Object(ObjectPattern),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(Text),
    Suffix(Text),
    Wildcard(Wildcard),
    EqualsIgnoreCase(String),
    AnythingBut(AnythingBut),
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
    Cidr(Network),
}

/// A string to compare exactly or ignoring case (stored lower-cased then).
#[derive(Debug, Clone, PartialEq)]
struct Text {
    text: String,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    Values(Vec<Value>),
    Prefix(String),
    Suffix(String),
    Wildcard(Wildcard),
    EqualsIgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
}

/// The literal pieces between the stars of a wildcard (one more piece than stars).
#[derive(Debug, Clone, PartialEq)]
struct Wildcard {
    pieces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Where the parser is, for error messages.
#[derive(Debug, Clone, Default)]
struct Path(String);

impl Path {
    fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            Self(key.to_owned())
        } else {
            Self(format!("{}.{key}", self.0))
        }
    }

    fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    fn error(&self, message: impl Into<String>) -> PatternError {
        PatternError {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the top level")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A short description of a JSON value for error messages (strings quoted, cut).
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            format!("the string {shown:?}{more}")
        }
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

const MATCHERS: &str =
    "prefix, suffix, wildcard, equals-ignore-case, anything-but, numeric, exists, cidr";

impl ObjectPattern {
    fn parse(object: &Map<String, Value>, path: &Path) -> Result<Self, PatternError> {
        if object.is_empty() {
            return Err(path.error(
                "an empty object matches nothing specific; name at least one member to match",
            ));
        }
        let mut fields = Vec::with_capacity(object.len());
        let mut any_of = None;
        for (key, value) in object {
            let here = path.key(key);
            if key == "$or" {
                any_of = Some(parse_or(value, &here)?);
                continue;
            }
            let field = match value {
                Value::Object(inner) => Field::Object(Self::parse(inner, &here)?),
                Value::Array(alternatives) => Field::Leaf(parse_leaf(alternatives, &here)?),
                other => {
                    return Err(here.error(format!(
                        "expected an array of alternatives like [{}] or an object that \
                         descends into the event, not {}",
                        if other.is_string() || other.is_number() || other.is_boolean() {
                            other.to_string()
                        } else {
                            "\"value\"".to_owned()
                        },
                        describe(other)
                    )));
                }
            };
            fields.push((key.clone(), field));
        }
        Ok(Self { fields, any_of })
    }

    /// Whether the pattern matches at `nodes` (every event value reached at this level).
    fn matches(&self, nodes: &[&Value]) -> bool {
        self.fields.iter().all(|(key, field)| {
            let children = children(nodes, key);
            match field {
                Field::Object(inner) => inner.matches(&children),
                Field::Leaf(matchers) => leaf_matches(matchers, &children),
            }
        }) && self
            .any_of
            .as_ref()
            .is_none_or(|alternatives| alternatives.iter().any(|a| a.matches(nodes)))
    }
}

fn parse_or(value: &Value, path: &Path) -> Result<Vec<ObjectPattern>, PatternError> {
    let Value::Array(items) = value else {
        return Err(path.error(format!(
            "$or takes an array of patterns like [{{\"a\": [1]}}, {{\"b\": [2]}}], not {}",
            describe(value)
        )));
    };
    if items.is_empty() {
        return Err(path.error("$or needs at least one pattern"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let here = path.index(i);
            match item {
                Value::Object(object) => ObjectPattern::parse(object, &here),
                other => Err(here.error(format!(
                    "each $or alternative must be a pattern object, not {}",
                    describe(other)
                ))),
            }
        })
        .collect()
}

fn parse_leaf(alternatives: &[Value], path: &Path) -> Result<Vec<Matcher>, PatternError> {
    if alternatives.is_empty() {
        return Err(path.error("an empty array matches nothing; list at least one alternative"));
    }
    alternatives
        .iter()
        .enumerate()
        .map(|(i, alternative)| {
            let here = path.index(i);
            match alternative {
                Value::Object(object) => parse_matcher(object, &here),
                Value::Array(_) => {
                    Err(here.error("arrays cannot be nested; list the alternatives in one array"))
                }
                exact => Ok(Matcher::Exact(exact.clone())),
            }
        })
        .collect()
}

fn parse_matcher(object: &Map<String, Value>, path: &Path) -> Result<Matcher, PatternError> {
    let mut entries = object.iter();
    let (Some((name, operand)), None) = (entries.next(), entries.next()) else {
        return Err(path.error(format!(
            "a matcher object has exactly one member, one of {MATCHERS}"
        )));
    };
    let here = path.key(name);
    let string = |what: &str| -> Result<String, PatternError> {
        operand
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| here.error(format!("{what} takes a string, not {}", describe(operand))))
    };
    Ok(match name.as_str() {
        "prefix" => Matcher::Prefix(parse_text(operand, &here, "prefix")?),
        "suffix" => Matcher::Suffix(parse_text(operand, &here, "suffix")?),
        "wildcard" => Matcher::Wildcard(Wildcard::parse(&string("wildcard")?, &here)?),
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(string("equals-ignore-case")?.to_lowercase())
        }
        "anything-but" => Matcher::AnythingBut(parse_anything_but(operand, &here)?),
        "numeric" => Matcher::Numeric(parse_numeric(operand, &here)?),
        "exists" => match operand {
            Value::Bool(b) => Matcher::Exists(*b),
            other => {
                return Err(here.error(format!(
                    "exists takes true or false, not {}",
                    describe(other)
                )));
            }
        },
        "cidr" => Matcher::Cidr(Network::parse(&string("cidr")?, &here)?),
        other => {
            return Err(path.error(format!(
                "unknown matcher {other:?}; expected one of {MATCHERS}"
            )));
        }
    })
}

/// `"p"` or `{"equals-ignore-case": "p"}` (prefix and suffix).
fn parse_text(operand: &Value, path: &Path, what: &str) -> Result<Text, PatternError> {
    match operand {
        Value::String(s) => Ok(Text {
            text: s.clone(),
            ignore_case: false,
        }),
        Value::Object(object) if object.len() == 1 => match object.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok(Text {
                text: s.to_lowercase(),
                ignore_case: true,
            }),
            Some(other) => Err(path.key("equals-ignore-case").error(format!(
                "equals-ignore-case takes a string, not {}",
                describe(other)
            ))),
            None => Err(path.error(format!(
                "{what} takes a string or {{\"equals-ignore-case\": \"…\"}}"
            ))),
        },
        other => Err(path.error(format!(
            "{what} takes a string or {{\"equals-ignore-case\": \"…\"}}, not {}",
            describe(other)
        ))),
    }
}

fn parse_anything_but(operand: &Value, path: &Path) -> Result<AnythingBut, PatternError> {
    let scalar = |value: &Value, here: &Path| -> Result<Value, PatternError> {
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => Ok(value.clone()),
            other => Err(here.error(format!(
                "anything-but lists strings, numbers, booleans or null, not {}",
                describe(other)
            ))),
        }
    };
    match operand {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(path.error("anything-but needs at least one value"));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &path.index(i)))
                .collect::<Result<_, _>>()?;
            Ok(AnythingBut::Values(values))
        }
        Value::Object(object) => {
            let mut entries = object.iter();
            let (Some((name, inner)), None) = (entries.next(), entries.next()) else {
                return Err(path.error(
                    "anything-but takes a value, an array of values, or one of \
                     {\"prefix\": …}, {\"suffix\": …}, {\"wildcard\": …}, {\"equals-ignore-case\": …}",
                ));
            };
            let here = path.key(name);
            let string = |value: &Value, here: &Path| -> Result<String, PatternError> {
                value.as_str().map(str::to_owned).ok_or_else(|| {
                    here.error(format!("{name} takes a string, not {}", describe(value)))
                })
            };
            match name.as_str() {
                "prefix" => Ok(AnythingBut::Prefix(string(inner, &here)?)),
                "suffix" => Ok(AnythingBut::Suffix(string(inner, &here)?)),
                "wildcard" => Ok(AnythingBut::Wildcard(Wildcard::parse(
                    &string(inner, &here)?,
                    &here,
                )?)),
                "equals-ignore-case" => {
                    let list = match inner {
                        Value::Array(items) if !items.is_empty() => items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| string(item, &here.index(i)).map(|s| s.to_lowercase()))
                            .collect::<Result<_, _>>()?,
                        Value::Array(_) => {
                            return Err(here.error("equals-ignore-case needs at least one string"));
                        }
                        other => vec![string(other, &here)?.to_lowercase()],
                    };
                    Ok(AnythingBut::EqualsIgnoreCase(list))
                }
                other => Err(path.error(format!(
                    "anything-but does not take {other:?}; use prefix, suffix, wildcard or \
                     equals-ignore-case"
                ))),
            }
        }
        single => Ok(AnythingBut::Values(vec![scalar(single, path)?])),
    }
}

fn parse_numeric(operand: &Value, path: &Path) -> Result<Vec<(Comparison, f64)>, PatternError> {
    let usage = "numeric takes one or two comparisons like [\">\", 0, \"<=\", 5]";
    let Value::Array(items) = operand else {
        return Err(path.error(format!("{usage}, not {}", describe(operand))));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(path.error(usage));
    }
    let mut comparisons = Vec::with_capacity(2);
    for (i, pair) in items.chunks(2).enumerate() {
        let (op, bound) = match pair {
            [op, bound] => (op, bound),
            _ => return Err(path.error(usage)),
        };
        let op_path = path.index(2 * i);
        let op = match op.as_str() {
            Some("<") => Comparison::Less,
            Some("<=") => Comparison::LessOrEqual,
            Some("=") => Comparison::Equal,
            Some(">=") => Comparison::GreaterOrEqual,
            Some(">") => Comparison::Greater,
            _ => {
                return Err(op_path.error(format!(
                    "expected one of \"<\", \"<=\", \"=\", \">=\", \">\", not {}",
                    describe(op)
                )));
            }
        };
        let bound = bound.as_f64().ok_or_else(|| {
            path.index(2 * i + 1)
                .error(format!("expected a number, not {}", describe(bound)))
        })?;
        comparisons.push((op, bound));
    }
    if let [(first, _), (second, _)] = comparisons.as_slice() {
        let lower = |c: &Comparison| matches!(c, Comparison::Greater | Comparison::GreaterOrEqual);
        let upper = |c: &Comparison| matches!(c, Comparison::Less | Comparison::LessOrEqual);
        if !((lower(first) && upper(second)) || (upper(first) && lower(second))) {
            return Err(path.error(
                "two numeric comparisons must be a lower bound (> or >=) and an upper bound \
                 (< or <=)",
            ));
        }
    }
    Ok(comparisons)
}

impl Wildcard {
    fn parse(pattern: &str, path: &Path) -> Result<Self, PatternError> {
        let mut pieces = vec![String::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => pieces.push(String::new()),
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => push_char(&mut pieces, escaped),
                    _ => {
                        return Err(path.error(
                            "a backslash in a wildcard must be followed by * or \\ \
                             (\\* is a literal star, \\\\ a backslash)",
                        ));
                    }
                },
                other => push_char(&mut pieces, other),
            }
        }
        Ok(Self { pieces })
    }

    fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return text == first;
        };
        if text.len() < first.len() + last.len()
            || !text.starts_with(first.as_str())
            || !text.ends_with(last.as_str())
        {
            return false;
        }
        let mut window = &text[first.len()..text.len() - last.len()];
        for piece in middle {
            match window.find(piece.as_str()) {
                Some(at) => window = &window[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push_char(pieces: &mut [String], c: char) {
    if let Some(last) = pieces.last_mut() {
        last.push(c);
    }
}

impl Network {
    fn parse(text: &str, path: &Path) -> Result<Self, PatternError> {
        let invalid = || {
            path.error(format!(
                "{text:?} is not a network like \"10.0.0.0/8\" or \"2001:db8::/32\""
            ))
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Self { addr, prefix })
    }

    fn contains(&self, text: &str) -> bool {
        let Ok(ip) = text.parse::<IpAddr>() else {
            return false;
        };
        let (network, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                (u128::from(n.to_bits()), u128::from(a.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => (n.to_bits(), a.to_bits(), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            u128::MAX << host_bits
        };
        network & mask == ip & mask
    }
}

/// The event values under `key` of every object in `nodes`, arrays flattened.
fn children<'a>(nodes: &[&'a Value], key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for node in nodes {
        if let Value::Object(object) = node
            && let Some(value) = object.get(key)
        {
            flatten(value, &mut out);
        }
    }
    out
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other),
    }
}

fn leaf_matches(matchers: &[Matcher], values: &[&Value]) -> bool {
    let leaves: Vec<&Value> = values.iter().copied().filter(|v| !v.is_object()).collect();
    matchers.iter().any(|matcher| match matcher {
        Matcher::Exists(wanted) => *wanted != leaves.is_empty(),
        other => leaves.iter().any(|value| other.test(value)),
    })
}

impl Matcher {
    /// Whether one present (non-object) value satisfies this alternative.
    fn test(&self, value: &Value) -> bool {
        match self {
            Matcher::Exact(expected) => same_value(expected, value),
            Matcher::Prefix(text) => value.as_str().is_some_and(|s| text.prefix_of(s)),
            Matcher::Suffix(text) => value.as_str().is_some_and(|s| text.suffix_of(s)),
            Matcher::Wildcard(wildcard) => value.as_str().is_some_and(|s| wildcard.matches(s)),
            Matcher::EqualsIgnoreCase(lower) => {
                value.as_str().is_some_and(|s| s.to_lowercase() == *lower)
            }
            Matcher::AnythingBut(but) => !but.excludes(value),
            Matcher::Numeric(comparisons) => value.as_f64().is_some_and(|n| {
                comparisons.iter().all(|(op, bound)| match op {
                    Comparison::Less => n < *bound,
                    Comparison::LessOrEqual => n <= *bound,
                    Comparison::Equal => n == *bound,
                    Comparison::GreaterOrEqual => n >= *bound,
                    Comparison::Greater => n > *bound,
                })
            }),
            Matcher::Exists(wanted) => *wanted,
            Matcher::Cidr(network) => value.as_str().is_some_and(|s| network.contains(s)),
        }
    }
}

impl Text {
    fn prefix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().starts_with(&self.text)
        } else {
            s.starts_with(&self.text)
        }
    }

    fn suffix_of(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().ends_with(&self.text)
        } else {
            s.ends_with(&self.text)
        }
    }
}

impl AnythingBut {
    /// Whether `value` is one of the excluded ones.
    fn excludes(&self, value: &Value) -> bool {
        match self {
            AnythingBut::Values(values) => values.iter().any(|v| same_value(v, value)),
            AnythingBut::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
            AnythingBut::Suffix(p) => value.as_str().is_some_and(|s| s.ends_with(p.as_str())),
            AnythingBut::Wildcard(w) => value.as_str().is_some_and(|s| w.matches(s)),
            AnythingBut::EqualsIgnoreCase(list) => value.as_str().is_some_and(|s| {
                let lower = s.to_lowercase();
                list.contains(&lower)
            }),
        }
    }
}

/// Exact equality of two scalars; numbers compare as numbers (`5` equals `5.0`).
fn same_value(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        (a, b) => a == b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn denied_get() -> Value {
        json!({
            "eventVersion": "1.11",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory",
                             "accountId": "111122223333", "userName": "mallory"},
            "eventTime": "2026-03-01T12:00:00Z",
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "GetSecretValue",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "10.1.2.3",
            "userAgent": "aws-cli/2.15",
            "errorCode": "AccessDeniedException",
            "errorMessage": "User is not authorized",
            "requestParameters": {"secretId": "prod/db/password"},
            "responseElements": null,
            "requestID": "r-1",
            "eventID": "e-1",
            "readOnly": true,
            "resources": [
                {"ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db/password-AbCdEf",
                 "type": "AWS::SecretsManager::Secret", "accountId": "111122223333"},
                {"ARN": "arn:aws:kms:us-east-1:111122223333:key/1234",
                 "type": "AWS::KMS::Key", "accountId": "111122223333"}
            ],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "111122223333",
            "additionalEventData": {"attempts": 3, "tags": ["a", "b"]}
        })
    }

    fn delete_secret() -> Value {
        json!({
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "DeleteSecret",
            "userIdentity": {"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
            "requestParameters": {"secretId": "dev/api-key", "recoveryWindowInDays": 7},
            "responseElements": {"name": "dev/api-key"},
            "sourceIPAddress": "2001:db8::7",
            "resources": [{"ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:dev/api-key-Zz",
                           "type": "AWS::SecretsManager::Secret"}],
            "eventType": "AwsApiCall",
            "readOnly": false
        })
    }

    fn rotation_failed() -> Value {
        json!({
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "RotationFailed",
            "userIdentity": {"type": "AWSService", "invokedBy": "secretsmanager.amazonaws.com"},
            "additionalEventData": {"SecretId": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"},
            "eventType": "AwsServiceEvent",
            "readOnly": false
        })
    }

    fn events() -> Vec<(&'static str, Value)> {
        vec![
            ("denied", denied_get()),
            ("delete", delete_secret()),
            ("rotfail", rotation_failed()),
        ]
    }

    /// Each row: a pattern and the events (by name) it must match; it must match no other.
    #[test]
    fn patterns_match_exactly_the_expected_events() {
        let table: Vec<(Value, &[&str])> = vec![
            // The issue's examples.
            (json!({"eventName": ["DeleteSecret"]}), &["delete"]),
            (
                json!({"eventName": ["GetSecretValue"], "errorCode": ["AccessDeniedException"],
                       "requestParameters": {"secretId": [{"wildcard": "prod/*"}]}}),
                &["denied"],
            ),
            (
                json!({"eventName": ["GetSecretValue"], "errorCode": ["AccessDeniedException"],
                       "resources": {"ARN": [{"wildcard": "arn:aws:secretsmanager:*:secret:prod/*"}]}}),
                &["denied"],
            ),
            (
                json!({"eventType": ["AwsServiceEvent"], "eventName": ["RotationFailed"]}),
                &["rotfail"],
            ),
            // Exact values: alternatives OR, keys AND.
            (
                json!({"eventName": ["DeleteSecret", "RotationFailed"]}),
                &["delete", "rotfail"],
            ),
            (
                json!({"eventName": ["DeleteSecret"], "readOnly": [true]}),
                &[],
            ),
            (json!({"readOnly": [false]}), &["delete", "rotfail"]),
            (json!({"readOnly": [true]}), &["denied"]),
            (json!({"responseElements": [null]}), &["denied"]),
            (
                json!({"requestParameters": {"recoveryWindowInDays": [7]}}),
                &["delete"],
            ),
            (
                json!({"requestParameters": {"recoveryWindowInDays": [7.0]}}),
                &["delete"],
            ),
            (
                json!({"requestParameters": {"recoveryWindowInDays": ["7"]}}),
                &[],
            ),
            (json!({"eventName": ["deletesecret"]}), &[]),
            // Nested objects and arrays of objects.
            (json!({"userIdentity": {"type": ["Root"]}}), &["delete"]),
            (
                json!({"resources": {"type": ["AWS::KMS::Key"]}}),
                &["denied"],
            ),
            (
                json!({"resources": {"type": ["AWS::SecretsManager::Secret"]}}),
                &["denied", "delete"],
            ),
            (json!({"additionalEventData": {"tags": ["b"]}}), &["denied"]),
            // prefix / suffix / wildcard / equals-ignore-case
            (json!({"eventName": [{"prefix": "Rotation"}]}), &["rotfail"]),
            (
                json!({"eventName": [{"prefix": {"equals-ignore-case": "getsecret"}}]}),
                &["denied"],
            ),
            (json!({"eventName": [{"suffix": "Secret"}]}), &["delete"]),
            (
                json!({"eventName": [{"suffix": {"equals-ignore-case": "VALUE"}}]}),
                &["denied"],
            ),
            (
                json!({"requestParameters": {"secretId": [{"wildcard": "*/api-*"}]}}),
                &["delete"],
            ),
            (
                json!({"requestParameters": {"secretId": [{"wildcard": "prod/*/password"}]}}),
                &["denied"],
            ),
            (
                json!({"requestParameters": {"secretId": [{"wildcard": "prod/*/pass"}]}}),
                &[],
            ),
            (
                json!({"eventName": [{"equals-ignore-case": "DELETESECRET"}]}),
                &["delete"],
            ),
            // anything-but
            (
                json!({"eventName": [{"anything-but": "DeleteSecret"}]}),
                &["denied", "rotfail"],
            ),
            (
                json!({"eventName": [{"anything-but": ["DeleteSecret", "GetSecretValue"]}]}),
                &["rotfail"],
            ),
            (
                json!({"eventName": [{"anything-but": {"prefix": "Rotation"}}]}),
                &["denied", "delete"],
            ),
            (
                json!({"eventName": [{"anything-but": {"suffix": "Value"}}]}),
                &["delete", "rotfail"],
            ),
            (
                json!({"eventName": [{"anything-but": {"wildcard": "*Secret*"}}]}),
                &["rotfail"],
            ),
            (
                json!({"eventName": [{"anything-but": {"equals-ignore-case": ["deletesecret", "ROTATIONFAILED"]}}]}),
                &["denied"],
            ),
            // anything-but never matches a missing member.
            (
                json!({"errorCode": [{"anything-but": "Nope"}]}),
                &["denied"],
            ),
            (
                json!({"requestParameters": {"recoveryWindowInDays": [{"anything-but": 30}]}}),
                &["delete"],
            ),
            // exists
            (json!({"errorCode": [{"exists": true}]}), &["denied"]),
            (
                json!({"errorCode": [{"exists": false}]}),
                &["delete", "rotfail"],
            ),
            (
                json!({"requestParameters": {"secretId": [{"exists": false}]}}),
                &["rotfail"],
            ),
            (json!({"responseElements": [{"exists": true}]}), &["denied"]),
            (
                json!({"errorCode": [{"exists": false}, "AccessDeniedException"]}),
                &["denied", "delete", "rotfail"],
            ),
            // numeric
            (
                json!({"additionalEventData": {"attempts": [{"numeric": [">", 0, "<=", 5]}]}}),
                &["denied"],
            ),
            (
                json!({"additionalEventData": {"attempts": [{"numeric": ["<", 3]}]}}),
                &[],
            ),
            (
                json!({"requestParameters": {"recoveryWindowInDays": [{"numeric": ["=", 7]}]}}),
                &["delete"],
            ),
            (
                json!({"requestParameters": {"secretId": [{"numeric": [">", 0]}]}}),
                &[],
            ),
            // cidr
            (
                json!({"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]}),
                &["denied"],
            ),
            (
                json!({"sourceIPAddress": [{"cidr": "10.1.2.3/32"}]}),
                &["denied"],
            ),
            (json!({"sourceIPAddress": [{"cidr": "10.1.2.0/31"}]}), &[]),
            (
                json!({"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}),
                &["delete"],
            ),
            (
                json!({"sourceIPAddress": [{"cidr": "0.0.0.0/0"}]}),
                &["denied"],
            ),
            // $or, at the top and nested
            (
                json!({"$or": [{"errorCode": ["AccessDeniedException"]}, {"userIdentity": {"type": ["Root"]}}]}),
                &["denied", "delete"],
            ),
            (
                json!({"eventSource": ["secretsmanager.amazonaws.com"],
                       "$or": [{"eventName": ["DeleteSecret"]}, {"eventType": ["AwsServiceEvent"]}]}),
                &["delete", "rotfail"],
            ),
            (
                json!({"userIdentity": {"$or": [{"type": ["Root"]}, {"userName": ["mallory"]}]}}),
                &["denied", "delete"],
            ),
        ];
        for (pattern, expected) in table {
            let parsed = EventPattern::parse(&pattern)
                .unwrap_or_else(|e| panic!("{pattern} does not parse: {e}"));
            for (name, event) in events() {
                assert_eq!(
                    parsed.matches(&event),
                    expected.contains(&name),
                    "pattern {pattern} on event {name}"
                );
            }
        }
    }

    #[test]
    fn wildcards_and_escapes() {
        let w = |p: &str| Wildcard::parse(p, &Path::default()).unwrap();
        assert!(w("prod/*").matches("prod/"));
        assert!(w("prod/*").matches("prod/db"));
        assert!(!w("prod/*").matches("prodx"));
        assert!(w("*").matches(""));
        assert!(w("a*b*c").matches("abc"));
        assert!(w("a*b*c").matches("a-b-b-c"));
        assert!(!w("a*b*c").matches("acb"));
        assert!(!w("ab*ba").matches("aba"));
        assert!(w("x").matches("x") && !w("x").matches("xx"));
        assert!(w(r"a\*b").matches("a*b") && !w(r"a\*b").matches("axb"));
        assert!(w(r"a\\*").matches(r"a\zzz"));
        assert!(w("é*ü").matches("éxxü"));
        assert!(Wildcard::parse(r"a\b", &Path::default()).is_err());
    }

    #[test]
    fn a_json_null_is_not_a_missing_member() {
        let p = EventPattern::parse(&json!({"x": [null]})).unwrap();
        assert!(p.matches(&json!({"x": null})));
        assert!(!p.matches(&json!({})));
        assert!(!p.matches(&json!({"x": "null"})));
        let missing = EventPattern::parse(&json!({"x": [{"exists": false}]})).unwrap();
        assert!(missing.matches(&json!({})));
        assert!(missing.matches(&json!({"x": []})));
        assert!(!missing.matches(&json!({"x": null})));
        // A nested pattern below a missing object: only exists false matches.
        let nested = EventPattern::parse(&json!({"a": {"b": [{"exists": false}]}})).unwrap();
        assert!(nested.matches(&json!({"c": 1})));
        assert!(!nested.matches(&json!({"a": {"b": 1}})));
        // A leaf pattern does not match an object in the event.
        let leaf = EventPattern::parse(&json!({"a": [{"exists": true}]})).unwrap();
        assert!(!leaf.matches(&json!({"a": {"b": 1}})));
        assert!(leaf.matches(&json!({"a": [1, {"b": 1}]})));
        // A non-object event matches nothing but "missing".
        assert!(!leaf.matches(&json!("text")));
    }

    #[test]
    fn bad_patterns_say_what_and_where() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!(["DeleteSecret"]),
                "the top level",
                "must be a JSON object",
            ),
            (json!({}), "the top level", "empty object"),
            (
                json!({"eventName": "DeleteSecret"}),
                "eventName",
                "array of alternatives",
            ),
            (json!({"eventName": []}), "eventName", "empty array"),
            (
                json!({"eventName": [["a"]]}),
                "eventName[0]",
                "cannot be nested",
            ),
            (json!({"a": {"b": {}}}), "a.b", "empty object"),
            (
                json!({"requestParameters": {"secretId": [{"wildcards": "prod/*"}]}}),
                "requestParameters.secretId[0]",
                "unknown matcher \"wildcards\"",
            ),
            (
                json!({"a": [{"prefix": "x", "suffix": "y"}]}),
                "a[0]",
                "exactly one member",
            ),
            (
                json!({"a": [{"prefix": 5}]}),
                "a[0].prefix",
                "prefix takes a string",
            ),
            (
                json!({"a": [{"exists": "yes"}]}),
                "a[0].exists",
                "true or false",
            ),
            (
                json!({"a": [{"numeric": [">", "0"]}]}),
                "a[0].numeric[1]",
                "expected a number",
            ),
            (
                json!({"a": [{"numeric": ["~", 0]}]}),
                "a[0].numeric[0]",
                "expected one of",
            ),
            (
                json!({"a": [{"numeric": [">", 0, ">", 5]}]}),
                "a[0].numeric",
                "lower bound",
            ),
            (
                json!({"a": [{"numeric": [">", 0, "<"]}]}),
                "a[0].numeric",
                "one or two",
            ),
            (
                json!({"a": [{"anything-but": []}]}),
                "a[0].anything-but",
                "at least one",
            ),
            (
                json!({"a": [{"anything-but": [{"x": 1}]}]}),
                "a[0].anything-but[0]",
                "strings, numbers",
            ),
            (
                json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
                "a[0].anything-but",
                "does not take",
            ),
            (
                json!({"a": [{"cidr": "10.0.0.0/33"}]}),
                "a[0].cidr",
                "not a network",
            ),
            (
                json!({"a": [{"cidr": "10.0.0.0"}]}),
                "a[0].cidr",
                "not a network",
            ),
            (
                json!({"a": [{"wildcard": "x\\y"}]}),
                "a[0].wildcard",
                "backslash",
            ),
            (json!({"$or": {"a": [1]}}), "$or", "array of patterns"),
            (json!({"$or": []}), "$or", "at least one"),
            (
                json!({"$or": [{"a": [1]}, "b"]}),
                "$or[1]",
                "pattern object",
            ),
            (
                json!({"$or": [{"a": [1]}, {"b": 2}]}),
                "$or[1].b",
                "array of alternatives",
            ),
        ];
        for (pattern, path, message) in cases {
            let err = EventPattern::parse(&pattern)
                .err()
                .unwrap_or_else(|| panic!("{pattern} should not parse"));
            assert_eq!(err.path, path, "{pattern}: {err}");
            assert!(err.message.contains(message), "{pattern}: {err}");
            assert!(err.to_string().contains(path), "{err}");
        }
    }
}
