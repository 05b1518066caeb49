//! What the audit trail needs from the wire: a request's and a response's members as JSON
//! (from a JSON body, a query form or the XML result), and the resources a call names.
//!
//! Redaction of secret members is the core's (`coffer_core::audit::redact`); this module
//! only reshapes, and must never log what it reads.

use coffer_core::audit::{
    EventSource, MAX_KEPT_ARRAY_ITEMS, Resource, event_member_name, event_string, more_items,
};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::query::Form;

/// The members of a JSON request or response body as an event records them (`None` when it
/// is not a JSON object): secret members skipped unread, names as CloudTrail spells them,
/// long strings and arrays shortened, in one pass.
pub(crate) fn json_parameters(body: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match EventForm.deserialize(&mut de) {
        Ok(v @ Value::Object(_)) if de.end().is_ok() => Some(v),
        _ => None,
    }
}

/// Builds the event's copy of a JSON document without ever holding a redacted member's
/// value: those are skipped as they are read (`IgnoredAny`), so a secret value in a request
/// body is not copied into the event's working data.
struct EventForm;

impl<'de> DeserializeSeed<'de> for EventForm {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventForm {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(event_string(v)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        let mut left_out = 0;
        while items.len() < MAX_KEPT_ARRAY_ITEMS {
            match seq.next_element_seed(EventForm)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            left_out += 1;
        }
        if left_out > 0 {
            items.push(more_items(left_out));
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match event_member_name(&key) {
                Some(name) => {
                    let value = map.next_value_seed(EventForm)?;
                    members.insert(name, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(members))
    }
}

/// The deepest nesting a query form's key becomes (`Tags.member.1.Key` is 4).
const MAX_FORM_DEPTH: usize = 8;

/// The members of a query request, unflattened: `Tags.member.1.Key=k` becomes
/// `{"Tags": [{"Key": "k"}]}`. `Action` and `Version` are the event's name, not parameters.
pub(crate) fn form_parameters(form: &Form) -> Option<Value> {
    let mut root = Map::new();
    for (key, value) in form.params() {
        if key == "Action" || key == "Version" {
            continue;
        }
        let mut node = &mut root;
        // Nesting follows at most MAX_FORM_DEPTH dots; the rest of a longer key stays one name
        // (a key of a million dots must not become a million nested objects).
        let mut parts = key.splitn(MAX_FORM_DEPTH, '.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_string(), Value::String(value.clone()));
                break;
            }
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(next) => node = next,
                _ => break,
            }
        }
    }
    (!root.is_empty()).then(|| lists(Value::Object(root)))
}

/// Turns `{"member": {"1": a, "2": b}}` into `[a, b]` (also for `entry`, the query protocol's
/// maps), at every depth.
fn lists(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: Map<String, Value> = map.into_iter().map(|(k, v)| (k, lists(v))).collect();
            if map.len() == 1
                && let Some((key, Value::Object(items))) = map.iter().next()
                && (key == "member" || key == "entry")
                && items.keys().all(|k| k.parse::<u32>().is_ok())
            {
                let mut numbered: Vec<(u32, Value)> = items
                    .iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
                    .collect();
                numbered.sort_by_key(|(n, _)| *n);
                return Value::Array(numbered.into_iter().map(|(_, v)| v).collect());
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// The JSON form of a query result written by [`crate::query::Xml`]: elements holding text
/// become strings, elements holding elements objects, and `member` lists arrays.
pub(crate) fn xml_elements(xml: &str) -> Option<Value> {
    let mut at = 0;
    let value = children(xml, &mut at)?;
    (at == xml.len()).then_some(value)
}

/// Parses elements from `at` until a closing tag or the end.
fn children(xml: &str, at: &mut usize) -> Option<Value> {
    let mut map = Map::new();
    let mut members = Vec::new();
    loop {
        let rest = xml.get(*at..)?;
        if rest.is_empty() || rest.starts_with("</") {
            break;
        }
        let open_end = rest.find('>')?;
        let name = rest.get(1..open_end)?;
        if !rest.starts_with('<') || name.is_empty() {
            return None;
        }
        *at += open_end + 1;
        let close = format!("</{name}>");
        let inner = xml.get(*at..)?;
        // A secret member's text is skipped, never copied (the element is dropped later).
        let secret = name != "member" && event_member_name(name).is_none();
        let value = if inner.starts_with('<') && !inner.starts_with(&close) {
            children(xml, at)?
        } else {
            let end = inner.find('<')?;
            let text = if secret {
                String::new()
            } else {
                unescape(inner.get(..end)?)
            };
            *at += end;
            Value::String(text)
        };
        if !xml.get(*at..)?.starts_with(&close) {
            return None;
        }
        *at += close.len();
        if name == "member" {
            members.push(value);
        } else if !secret {
            map.insert(name.to_string(), value);
        }
    }
    if map.is_empty() && !members.is_empty() {
        return Some(Value::Array(members));
    }
    Some(Value::Object(map))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&#10;", "\n")
        .replace("&amp;", "&")
}

/// The service a JSON target prefix names (`secretsmanager`, `TrentService`, botocore's
/// `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101` or `CloudTrail_20131101`).
pub(crate) fn target_source(prefix: &str) -> EventSource {
    match prefix {
        "secretsmanager" => EventSource::SecretsManager,
        "TrentService" => EventSource::Kms,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101" | "CloudTrail_20131101" => {
            EventSource::CloudTrail
        }
        _ => EventSource::Unknown,
    }
}

/// The ARN-bearing members of a JSON response, read without keeping anything else.
#[derive(Deserialize, Default)]
struct ResponseArns {
    #[serde(rename = "ARN")]
    arn: Option<String>,
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "KeyMetadata")]
    key_metadata: Option<KeyMetadataArn>,
}

#[derive(Deserialize)]
struct KeyMetadataArn {
    #[serde(rename = "Arn")]
    arn: Option<String>,
}

/// The ARN members of a response. Secrets Manager's answers are written by this crate with
/// `ARN` first, so the common case is read off the front without parsing the rest (which
/// may be a secret value); anything else is parsed.
fn leading_arn(body: &[u8]) -> ResponseArns {
    const PREFIX: &[u8] = b"{\"ARN\":\"";
    if let Some(rest) = body.strip_prefix(PREFIX)
        && let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\')
        && rest.get(end) == Some(&b'"')
        && let Ok(arn) = std::str::from_utf8(&rest[..end])
    {
        return ResponseArns {
            arn: Some(arn.to_string()),
            ..ResponseArns::default()
        };
    }
    serde_json::from_slice(body).unwrap_or_default()
}

fn is_arn_of(text: &str, service: &str) -> bool {
    text.strip_prefix("arn:")
        .and_then(|rest| rest.split(':').nth(1))
        .is_some_and(|s| s == service)
}

/// The resources a JSON-protocol call names: the ARN its answer gives, else an ARN the
/// request gave (`request` in the event's form: `secretId`, `keyId`).
pub(crate) fn json_resources(
    source: EventSource,
    request: Option<&Value>,
    response: Option<&[u8]>,
) -> Vec<Resource> {
    let answered = response.map_or_else(ResponseArns::default, leading_arn);
    let requested = |member: &str| {
        request
            .and_then(|r| r.get(member))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match source {
        EventSource::SecretsManager => answered
            .arn
            .or_else(|| requested("secretId").filter(|id| is_arn_of(id, "secretsmanager")))
            .map(Resource::secret)
            .into_iter()
            .collect(),
        EventSource::Kms => answered
            .key_metadata
            .and_then(|m| m.arn)
            .or(answered.key_id)
            .filter(|id| is_arn_of(id, "kms") && id.contains(":key/"))
            .or_else(|| {
                requested("keyId").filter(|id| is_arn_of(id, "kms") && id.contains(":key/"))
            })
            .map(Resource::kms_key)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The resources a query-protocol call names (the role of AssumeRole).
pub(crate) fn form_resources(action: &str, form: &Form) -> Vec<Resource> {
    match (action, form.get("RoleArn")) {
        ("AssumeRole", Some(arn)) if is_arn_of(arn, "iam") => vec![Resource::role(arn)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_unflatten_lists_and_maps() {
        let form = Form::parse(
            b"Action=CreateUser&Version=2010-05-08&UserName=alice&Tags.member.2.Key=b&Tags.member.1.Key=a&Tags.member.1.Value=x&Tags.member.2.Value=y",
        )
        .unwrap();
        assert_eq!(
            form_parameters(&form).unwrap(),
            json!({"UserName": "alice", "Tags": [{"Key": "a", "Value": "x"}, {"Key": "b", "Value": "y"}]})
        );
        let deep = format!("Action=X&{}=1", ".".repeat(100_000));
        let got = form_parameters(&Form::parse(deep.as_bytes()).unwrap()).unwrap();
        let mut depth = 0;
        let mut node = &got;
        while let Some((_, next)) = node.as_object().and_then(|m| m.iter().next()) {
            depth += 1;
            node = next;
        }
        assert!(depth <= MAX_FORM_DEPTH, "{depth}");
        let empty = Form::parse(b"Action=GetCallerIdentity&Version=2011-06-15").unwrap();
        assert_eq!(form_parameters(&empty), None);
    }

    #[test]
    fn json_bodies_are_read_redacted_renamed_and_shortened() {
        let body = format!(
            r#"{{"SecretId":"db","SecretString":"hunter2","Tags":[{{"Key":"k","Value":"v"}}],"Nested":{{"Plaintext":"p","Long":"{}"}},"Many":[{}]}}"#,
            "x".repeat(5000),
            (0..150)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let got = json_parameters(body.as_bytes()).unwrap();
        assert_eq!(got["secretId"], "db");
        assert!(got.get("secretString").is_none() && got.get("SecretString").is_none());
        assert_eq!(got["tags"], json!([{"key": "k", "value": "v"}]));
        assert!(got["nested"].get("plaintext").is_none());
        assert!(
            got["nested"]["long"]
                .as_str()
                .unwrap()
                .ends_with("more bytes]")
        );
        let many = got["many"].as_array().unwrap();
        assert_eq!(many.len(), MAX_KEPT_ARRAY_ITEMS + 1);
        assert_eq!(many[MAX_KEPT_ARRAY_ITEMS], "…[50 more items]");
        assert_eq!(json_parameters(b"[1,2]"), None);
        assert_eq!(json_parameters(b"{\"a\":1} trailing"), None);
        assert_eq!(json_parameters(b"not json"), None);
    }

    #[test]
    fn query_results_become_json() {
        let xml = "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s&amp;k</SecretAccessKey></Credentials><Users><member><UserName>a</UserName></member><member><UserName>b</UserName></member></Users><Empty></Empty>";
        assert_eq!(
            xml_elements(xml).unwrap(),
            json!({
                "Credentials": {"AccessKeyId": "ASIA1"},
                "Users": [{"UserName": "a"}, {"UserName": "b"}],
                "Empty": ""
            })
        );
        assert_eq!(xml_elements("<A>x</B>"), None);
        assert_eq!(xml_elements("<A>x"), None);
        assert_eq!(xml_elements("text"), None);
    }

    #[test]
    fn resources_come_from_the_answer_then_the_request() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let answer = format!(r#"{{"ARN":"{arn}","Name":"db","SecretString":"hunter2"}}"#);
        let got = json_resources(
            EventSource::SecretsManager,
            Some(&json!({"secretId": "db"})),
            Some(answer.as_bytes()),
        );
        assert_eq!(got, vec![Resource::secret(arn)]);
        // Not first: parsed.
        let later = format!(r#"{{"Name":"db","ARN":"{arn}"}}"#);
        assert_eq!(
            json_resources(EventSource::SecretsManager, None, Some(later.as_bytes())),
            vec![Resource::secret(arn)]
        );
        // An escape inside the value: parsed, not cut at the backslash.
        let escaped =
            r#"{"ARN":"arn:aws:secretsmanager:us-east-1:111122223333:secret:a\u0062-AbCdEf"}"#;
        assert_eq!(
            json_resources(EventSource::SecretsManager, None, Some(escaped.as_bytes())),
            vec![Resource::secret(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:ab-AbCdEf"
            )]
        );
        let by_request = json_resources(
            EventSource::SecretsManager,
            Some(&json!({ "secretId": arn })),
            None,
        );
        assert_eq!(by_request, vec![Resource::secret(arn)]);
        assert!(
            json_resources(
                EventSource::SecretsManager,
                Some(&json!({"SecretId": "db"})),
                None
            )
            .is_empty()
        );
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234";
        let meta = format!(r#"{{"KeyMetadata":{{"Arn":"{key}","KeyId":"1234"}}}}"#);
        assert_eq!(
            json_resources(EventSource::Kms, None, Some(meta.as_bytes())),
            vec![Resource::kms_key(key)]
        );
        let alias = json!({"keyId": "alias/app"});
        assert!(json_resources(EventSource::Kms, Some(&alias), None).is_empty());
    }
}
