//! `ListSecrets` and `BatchGetSecretValue` filters, sorting and pagination tokens.
//!
//! Matching follows the AWS user guide ("Find secrets in Secrets Manager"): `name`,
//! `tag-key`, `tag-value` and `primary-region` are case-sensitive prefix matches;
//! `description`, `owning-service` and `all` break values into words and match word prefixes
//! without regard to case. Values of one key are alternatives; keys are combined with AND; a
//! value starting with `!` excludes the secrets it matches.

use coffer_store::SecretRecord;

use crate::CoreError;

/// A filter key of `ListSecrets` / `BatchGetSecretValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterKey {
    Description,
    Name,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
    All,
}

impl FilterKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "description" => Self::Description,
            "name" => Self::Name,
            "tag-key" => Self::TagKey,
            "tag-value" => Self::TagValue,
            "primary-region" => Self::PrimaryRegion,
            "owning-service" => Self::OwningService,
            "all" => Self::All,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Name => "name",
            Self::TagKey => "tag-key",
            Self::TagValue => "tag-value",
            Self::PrimaryRegion => "primary-region",
            Self::OwningService => "owning-service",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub key: FilterKey,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    CreatedDate,
    LastAccessedDate,
    LastChangedDate,
    Name,
}

impl SortBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created-date" => Self::CreatedDate,
            "last-accessed-date" => Self::LastAccessedDate,
            "last-changed-date" => Self::LastChangedDate,
            "name" => Self::Name,
            _ => return None,
        })
    }
}

fn words(s: &str) -> Vec<String> {
    // Words are separated by anything that is not a letter or digit, and by a lower-to-upper
    // case change ("MyDatabase" → "my", "database").
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn words_match(pattern: &str, attribute: &str) -> bool {
    let wanted = words(pattern);
    if wanted.is_empty() {
        return false;
    }
    let have = words(attribute);
    wanted
        .iter()
        .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
}

fn attributes(secret: &SecretRecord, key: FilterKey) -> Vec<&str> {
    match key {
        FilterKey::Name => vec![secret.name.as_str()],
        FilterKey::Description => secret.description.as_deref().into_iter().collect(),
        FilterKey::TagKey => secret.tags.iter().map(|(k, _)| k.as_str()).collect(),
        FilterKey::TagValue => secret.tags.iter().map(|(_, v)| v.as_str()).collect(),
        FilterKey::PrimaryRegion => vec![secret.region.as_str()],
        FilterKey::OwningService => secret.owning_service.as_deref().into_iter().collect(),
        FilterKey::All => {
            let mut a = vec![secret.name.as_str()];
            a.extend(secret.description.as_deref());
            a.extend(
                secret
                    .tags
                    .iter()
                    .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
            );
            a.extend(secret.owning_service.as_deref());
            a
        }
    }
}

fn value_matches(key: FilterKey, value: &str, attrs: &[&str]) -> bool {
    match key {
        FilterKey::Name | FilterKey::TagKey | FilterKey::TagValue | FilterKey::PrimaryRegion => {
            attrs.iter().any(|a| a.starts_with(value))
        }
        FilterKey::Description | FilterKey::OwningService | FilterKey::All => {
            attrs.iter().any(|a| words_match(value, a))
        }
    }
}

/// Whether `secret` passes every filter.
pub fn matches(secret: &SecretRecord, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        let attrs = attributes(secret, f.key);
        let (negated, wanted): (Vec<&String>, Vec<&String>) =
            f.values.iter().partition(|v| v.starts_with('!'));
        let excluded = negated
            .iter()
            .any(|v| value_matches(f.key, &v[1..], &attrs));
        let included = wanted.is_empty() || wanted.iter().any(|v| value_matches(f.key, v, &attrs));
        included && !excluded
    })
}

/// Validates filters as AWS does.
pub fn validate_filters(filters: &[Filter]) -> Result<(), CoreError> {
    for f in filters {
        if f.values.is_empty() {
            return Err(CoreError::InvalidParameter(format!(
                "Invalid filter values for key: {}",
                f.key.as_str()
            )));
        }
    }
    Ok(())
}

/// Sorts in place; ties are broken by ARN so that pages are stable.
pub fn sort(secrets: &mut [SecretRecord], by: SortBy, descending: bool) {
    secrets.sort_by(|a, b| {
        let primary = match by {
            SortBy::CreatedDate => a.created_ms.cmp(&b.created_ms),
            SortBy::LastAccessedDate => a.last_accessed_ms.cmp(&b.last_accessed_ms),
            SortBy::LastChangedDate => a.last_changed_ms.cmp(&b.last_changed_ms),
            SortBy::Name => a.name.cmp(&b.name),
        };
        let ord = primary.then_with(|| a.arn.cmp(&b.arn));
        if descending { ord.reverse() } else { ord }
    });
}

/// A page token: the offset into the sorted result, bound to a fingerprint of the query so a
/// token cannot be replayed against a different query. Opaque to clients (base64url-like hex).
pub fn encode_token(offset: usize, fingerprint: &str) -> String {
    coffer_crypto::hex(format!("1:{offset}:{fingerprint}").as_bytes())
}

pub fn decode_token(token: &str, fingerprint: &str) -> Result<usize, CoreError> {
    let invalid = || CoreError::InvalidNextToken("The NextToken value is invalid.".into());
    if !token.len().is_multiple_of(2) || token.len() > 512 {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let text = bytes
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("1"), Some(off), Some(fp)) if fp == fingerprint => off.parse().map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// A fingerprint of a query's shape, for [`encode_token`].
pub fn fingerprint(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    coffer_crypto::hex(&coffer_crypto::sha256(joined.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, description: Option<&str>, tags: &[(&str, &str)]) -> SecretRecord {
        SecretRecord {
            arn: format!("arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}-abcdef"),
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            name: name.into(),
            description: description.map(Into::into),
            kms_key_id: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            owning_service: None,
            created_ms: 0,
            last_changed_ms: 0,
            last_accessed_ms: None,
            deleted_ms: None,
            deletion_due_ms: None,
            resource_policy: None,
            rotation: None,
            versions: vec![],
            revision: 0,
        }
    }

    fn f(key: FilterKey, values: &[&str]) -> Filter {
        Filter {
            key,
            values: values.iter().map(|v| (*v).into()).collect(),
        }
    }

    #[test]
    fn filter_table() {
        let s = secret(
            "prod/MyDatabase",
            Some("Primary Postgres password"),
            &[("team", "Payments"), ("env", "prod")],
        );
        let cases: &[(Filter, bool)] = &[
            (f(FilterKey::Name, &["prod/"]), true),
            (f(FilterKey::Name, &["Prod/"]), false),
            (f(FilterKey::Name, &["MyDatabase"]), false),
            (f(FilterKey::Name, &["dev/", "prod/"]), true),
            (f(FilterKey::Name, &["!prod/"]), false),
            (f(FilterKey::Name, &["!dev/"]), true),
            (f(FilterKey::Description, &["postgres"]), true),
            (f(FilterKey::Description, &["pass"]), true),
            (f(FilterKey::Description, &["mysql"]), false),
            (f(FilterKey::TagKey, &["te"]), true),
            (f(FilterKey::TagKey, &["Te"]), false),
            (f(FilterKey::TagValue, &["Pay"]), true),
            (f(FilterKey::TagValue, &["!Pay"]), false),
            (f(FilterKey::PrimaryRegion, &["us-east"]), true),
            (f(FilterKey::PrimaryRegion, &["eu-"]), false),
            (f(FilterKey::OwningService, &["rds"]), false),
            (f(FilterKey::All, &["database"]), true),
            (f(FilterKey::All, &["payments"]), true),
            (f(FilterKey::All, &["primary postgres"]), true),
            (f(FilterKey::All, &["nothing"]), false),
        ];
        for (filter, want) in cases {
            assert_eq!(
                matches(&s, std::slice::from_ref(filter)),
                *want,
                "{filter:?}"
            );
        }
        // keys combine with AND
        assert!(matches(
            &s,
            &[
                f(FilterKey::Name, &["prod"]),
                f(FilterKey::TagKey, &["env"])
            ]
        ));
        assert!(!matches(
            &s,
            &[
                f(FilterKey::Name, &["prod"]),
                f(FilterKey::TagKey, &["owner"])
            ]
        ));
    }

    #[test]
    fn tokens_round_trip_and_reject_foreign_ones() {
        let fp = fingerprint(&["name", "asc"]);
        let t = encode_token(40, &fp);
        assert_eq!(decode_token(&t, &fp).unwrap(), 40);
        assert!(decode_token(&t, &fingerprint(&["other"])).is_err());
        for bad in ["", "zz", "abc", &"00".repeat(300)] {
            assert!(decode_token(bad, &fp).is_err(), "{bad}");
        }
    }

    #[test]
    fn sorting_is_stable_by_arn() {
        let mut v = vec![
            secret("b", None, &[]),
            secret("a", None, &[]),
            secret("c", None, &[]),
        ];
        sort(&mut v, SortBy::Name, false);
        assert_eq!(
            v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        sort(&mut v, SortBy::Name, true);
        assert_eq!(
            v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
    }
}
