//! The CloudTrail API in AWS JSON 1.1 (`X-Amz-Target:
//! com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Operation>`, SigV4 signing name
//! `cloudtrail`): `LookupEvents` over coffer's audit trail, with the request and response
//! shapes of the botocore model `cloudtrail/2013-11-01`. coffer has no trails, event data
//! stores or Insights to manage, so every other operation is unknown.
//!
//! Timestamps are epoch seconds (a JSON number; a numeric or ISO 8601 string is accepted
//! too). `ReadOnly` is the string `"true"` or `"false"` and `CloudTrailEvent` the recorded
//! event's JSON as a string, as in AWS. Validation errors are the model's exceptions
//! (`InvalidLookupAttributesException`, `InvalidTimeRangeException`,
//! `InvalidMaxResultsException`, `InvalidNextTokenException`,
//! `InvalidEventCategoryException`), HTTP 400, decided by `coffer-core`.

use coffer_core::audit::lookup::{FoundEvent, LookupPage, LookupQuery};
use coffer_core::clock::{EpochMillis, parse_iso8601};
use coffer_core::{Caller, Coffer};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::secretsmanager::{parse, to_body};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LookupAttributeDto {
    attribute_key: Option<String>,
    attribute_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LookupEventsDto {
    lookup_attributes: Option<Vec<LookupAttributeDto>>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    event_category: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// A timestamp member: epoch seconds as a number (fractions kept to the millisecond), or a
/// string holding epoch seconds or an ISO 8601 time.
fn timestamp(value: Option<Value>, member: &str) -> Result<Option<EpochMillis>, ApiError> {
    let invalid = || {
        ApiError::serialization(format!(
            "{member} must be a timestamp: epoch seconds or an ISO 8601 time."
        ))
    };
    let from_secs = |secs: f64| -> Result<EpochMillis, ApiError> {
        // ±10^14 s is far beyond any event and keeps the conversion exact to the millisecond.
        if !secs.is_finite() || secs.abs() > 1e14 {
            return Err(invalid());
        }
        #[allow(clippy::cast_possible_truncation)]
        let ms = (secs * 1000.0).round() as i64;
        Ok(ms)
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => from_secs(n.as_f64().ok_or_else(invalid)?).map(Some),
        Some(Value::String(s)) => {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(secs) => from_secs(secs).map(Some),
                Err(_) => parse_iso8601(s).map(Some).ok_or_else(invalid),
            }
        }
        Some(_) => Err(invalid()),
    }
}

fn query_from(d: LookupEventsDto) -> Result<LookupQuery, ApiError> {
    let lookup_attributes = d
        .lookup_attributes
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let n = i + 1;
            let key = a.attribute_key.ok_or_else(|| {
                ApiError::missing(&format!("lookupAttributes.{n}.member.attributeKey"))
            })?;
            let value = a.attribute_value.ok_or_else(|| {
                ApiError::missing(&format!("lookupAttributes.{n}.member.attributeValue"))
            })?;
            Ok((key, value))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(LookupQuery {
        lookup_attributes,
        start_time_ms: timestamp(d.start_time, "StartTime")?,
        end_time_ms: timestamp(d.end_time, "EndTime")?,
        event_category: d.event_category,
        max_results: d.max_results,
        next_token: d.next_token,
        // The core scopes the lookup to the caller's account.
        account_id: None,
    })
}

/// One `Event` of the model.
fn event_json(e: &FoundEvent) -> Value {
    let mut m = Map::new();
    m.insert("EventId".into(), e.event_id.clone().into());
    m.insert("EventName".into(), e.event_name.clone().into());
    m.insert(
        "ReadOnly".into(),
        if e.read_only { "true" } else { "false" }.into(),
    );
    if let Some(key) = &e.access_key_id {
        m.insert("AccessKeyId".into(), key.clone().into());
    }
    // eventTime has whole seconds.
    m.insert("EventTime".into(), e.event_time_ms.div_euclid(1000).into());
    m.insert("EventSource".into(), e.event_source.clone().into());
    if let Some(name) = &e.username {
        m.insert("Username".into(), name.clone().into());
    }
    let resources: Vec<Value> = e
        .resources
        .iter()
        .map(|(kind, name)| {
            let mut r = Map::new();
            if !kind.is_empty() {
                r.insert("ResourceType".into(), kind.clone().into());
            }
            if !name.is_empty() {
                r.insert("ResourceName".into(), name.clone().into());
            }
            Value::Object(r)
        })
        .collect();
    m.insert("Resources".into(), resources.into());
    m.insert("CloudTrailEvent".into(), e.raw.clone().into());
    Value::Object(m)
}

/// The `LookupEventsResponse`.
fn page_json(page: &LookupPage) -> Value {
    let mut out = json!({ "Events": page.events.iter().map(event_json).collect::<Vec<_>>() });
    if let Some(token) = &page.next_token {
        out["NextToken"] = token.clone().into();
    }
    out
}

/// Runs one CloudTrail operation; the response body.
pub(crate) async fn dispatch(
    coffer: &Coffer,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match operation {
        "LookupEvents" => {
            let d: LookupEventsDto = parse(body)?;
            let query = query_from(d)?;
            let page = coffer.lookup_events(caller, query).await?;
            to_body(&page_json(&page))
        }
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!(
                "coffer does not implement the CloudTrail operation {other}; it serves LookupEvents only."
            ),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn query(body: &str) -> Result<LookupQuery, ApiError> {
        query_from(parse(body.as_bytes())?)
    }

    #[test]
    fn requests_read_as_the_model_says() {
        let q = query(
            r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"GetSecretValue"}],
                "StartTime":1795500000,"EndTime":1795500001.5,"MaxResults":10,
                "NextToken":"abc","EventCategory":"insight"}"#,
        )
        .unwrap();
        assert_eq!(
            q,
            LookupQuery {
                lookup_attributes: vec![("EventName".into(), "GetSecretValue".into())],
                start_time_ms: Some(1_795_500_000_000),
                end_time_ms: Some(1_795_500_001_500),
                event_category: Some("insight".into()),
                max_results: Some(10),
                next_token: Some("abc".into()),
                account_id: None,
            }
        );
        assert_eq!(query("").unwrap(), LookupQuery::default());
        let q = query(r#"{"StartTime":"2026-11-24T10:00:00Z","EndTime":"1795500000"}"#).unwrap();
        assert_eq!(q.start_time_ms, parse_iso8601("2026-11-24T10:00:00Z"));
        assert_eq!(q.end_time_ms, Some(1_795_500_000_000));

        let e = query(r#"{"LookupAttributes":[{"AttributeValue":"x"}]}"#).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message.contains("lookupAttributes.1.member.attributeKey"),
            "{}",
            e.message
        );
        for bad in [
            r#"{"StartTime":"yesterday"}"#,
            r#"{"StartTime":true}"#,
            r#"{"EndTime":1e300}"#,
            r#"{"MaxResults":"ten"}"#,
        ] {
            assert_eq!(
                query(bad).unwrap_err().code,
                "SerializationException",
                "{bad}"
            );
        }
    }

    #[test]
    fn events_have_the_models_shape() {
        let page = LookupPage {
            events: vec![
                FoundEvent {
                    seq: 7,
                    event_id: "e7".into(),
                    event_name: "GetSecretValue".into(),
                    read_only: true,
                    access_key_id: Some("AKIAEXAMPLE".into()),
                    event_time_ms: 1_795_500_001_000,
                    event_source: "secretsmanager.amazonaws.com".into(),
                    username: Some("alice".into()),
                    resources: vec![(
                        "AWS::SecretsManager::Secret".into(),
                        "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"
                            .into(),
                    )],
                    raw: r#"{"eventID":"e7"}"#.into(),
                },
                FoundEvent {
                    seq: 6,
                    event_id: "e6".into(),
                    event_name: "RotationSucceeded".into(),
                    read_only: false,
                    access_key_id: None,
                    event_time_ms: 1_795_500_000_000,
                    event_source: "secretsmanager.amazonaws.com".into(),
                    username: None,
                    resources: Vec::new(),
                    raw: "{}".into(),
                },
            ],
            next_token: Some("tok".into()),
        };
        assert_eq!(
            page_json(&page),
            json!({
                "Events": [
                    {"EventId": "e7", "EventName": "GetSecretValue", "ReadOnly": "true",
                     "AccessKeyId": "AKIAEXAMPLE", "EventTime": 1_795_500_001_i64,
                     "EventSource": "secretsmanager.amazonaws.com", "Username": "alice",
                     "Resources": [{"ResourceType": "AWS::SecretsManager::Secret",
                                    "ResourceName": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"}],
                     "CloudTrailEvent": "{\"eventID\":\"e7\"}"},
                    {"EventId": "e6", "EventName": "RotationSucceeded", "ReadOnly": "false",
                     "EventTime": 1_795_500_000_i64, "EventSource": "secretsmanager.amazonaws.com",
                     "Resources": [], "CloudTrailEvent": "{}"}
                ],
                "NextToken": "tok"
            })
        );
        let empty = page_json(&LookupPage::default());
        assert_eq!(empty, json!({"Events": []}));
    }
}
