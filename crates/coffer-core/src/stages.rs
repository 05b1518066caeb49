//! Staging labels on secret versions, as AWS moves them. Pure functions over a secret's
//! version list; the table tests below are the specification.
//!
//! Rules (AWS Secrets Manager user guide, "Secret versions"; API reference of
//! `PutSecretValue` and `UpdateSecretVersionStage`):
//! - a label is attached to at most one version of a secret;
//! - when `AWSCURRENT` moves to another version, the version that had it gets `AWSPREVIOUS`;
//! - a secret carries at most 20 distinct labels;
//! - a version without labels is deprecated; beyond 100 versions the oldest deprecated ones
//!   are removed, but never one created less than 24 hours ago.

use coffer_store::VersionRecord;

use crate::CoreError;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
pub const AWSPENDING: &str = "AWSPENDING";
pub const MAX_LABELS: usize = 20;
pub const MAX_VERSIONS: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// The version carrying `stage`, if any.
pub fn holder<'a>(versions: &'a [VersionRecord], stage: &str) -> Option<&'a VersionRecord> {
    versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == stage))
}

fn detach(versions: &mut [VersionRecord], stage: &str) {
    for v in versions.iter_mut() {
        v.stages.retain(|s| s != stage);
    }
}

/// Attaches `stage` to the version `to`, detaching it from wherever it was; moving
/// `AWSCURRENT` hands `AWSPREVIOUS` to the version that had it.
fn attach(versions: &mut [VersionRecord], stage: &str, to: &str) {
    let previous_holder = holder(versions, stage).map(|v| v.version_id.clone());
    if previous_holder.as_deref() == Some(to) {
        return;
    }
    detach(versions, stage);
    if stage == AWSCURRENT
        && let Some(prev) = previous_holder
    {
        detach(versions, AWSPREVIOUS);
        if let Some(v) = versions.iter_mut().find(|v| v.version_id == prev) {
            v.stages.push(AWSPREVIOUS.to_string());
        }
    }
    if let Some(v) = versions.iter_mut().find(|v| v.version_id == to) {
        v.stages.push(stage.to_string());
    }
}

/// Adds a new version (with empty `stages`) and attaches `stages` to it.
pub fn add_version(
    versions: &mut Vec<VersionRecord>,
    mut new: VersionRecord,
    stages: &[String],
) -> Result<(), CoreError> {
    new.stages.clear();
    let id = new.version_id.clone();
    versions.push(new);
    for stage in stages {
        attach(versions, stage, &id);
    }
    check_label_count(versions)
}

fn check_label_count(versions: &[VersionRecord]) -> Result<(), CoreError> {
    let mut labels: Vec<&str> = versions
        .iter()
        .flat_map(|v| v.stages.iter().map(String::as_str))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    if labels.len() > MAX_LABELS {
        return Err(CoreError::LimitExceeded(format!(
            "A secret can have at most {MAX_LABELS} staging labels; remove one before adding another."
        )));
    }
    Ok(())
}

/// `UpdateSecretVersionStage`: moves or removes `stage`.
pub fn update_stage(
    versions: &mut [VersionRecord],
    stage: &str,
    remove_from: Option<&str>,
    move_to: Option<&str>,
) -> Result<(), CoreError> {
    let exists = |id: &str| versions.iter().any(|v| v.version_id == id);
    for id in [remove_from, move_to].into_iter().flatten() {
        if !exists(id) {
            return Err(CoreError::InvalidParameter(format!(
                "Secrets Manager can't find the specified secret version: {id}"
            )));
        }
    }
    let current_holder = holder(versions, stage).map(|v| v.version_id.clone());
    if let Some(from) = remove_from
        && current_holder.as_deref() != Some(from)
    {
        return Err(CoreError::InvalidParameter(format!(
            "The staging label {stage} is not attached to version {from}."
        )));
    }
    match move_to {
        Some(to) => {
            // The version a rotation made has no value until createSecret stores one; only
            // its own AWSPENDING label may be on it, so AWSCURRENT can never point at nothing.
            if stage != AWSPENDING && versions.iter().any(|v| v.version_id == to && v.empty) {
                return Err(CoreError::InvalidRequest(format!(
                    "You can't attach the staging label {stage} to version {to}: it has no secret value yet. Store its value (PutSecretValue with ClientRequestToken {to}) first."
                )));
            }
            if let Some(held) = current_holder.as_deref()
                && held != to
                && remove_from.is_none()
            {
                // AWS refuses to move a label off a version implicitly.
                return Err(CoreError::InvalidParameter(format!(
                    "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently attached to version {held}, so you must explicitly reference that version in RemoveFromVersionId."
                )));
            }
            attach(versions, stage, to);
        }
        None => {
            if remove_from.is_none() {
                return Err(CoreError::InvalidParameter(
                    "You must specify MoveToVersionId, RemoveFromVersionId or both.".into(),
                ));
            }
            if stage == AWSCURRENT {
                return Err(CoreError::InvalidParameter(
                    "You can't remove the staging label AWSCURRENT from a version; move it to another version with MoveToVersionId instead.".into(),
                ));
            }
            detach(versions, stage);
        }
    }
    check_label_count(versions)
}

/// Removes the oldest deprecated versions beyond [`MAX_VERSIONS`] that are at least a day
/// old. Returns the removed version ids.
pub fn prune(versions: &mut Vec<VersionRecord>, now_ms: i64) -> Vec<String> {
    let mut removed = Vec::new();
    while versions.len() > MAX_VERSIONS {
        let oldest = versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.stages.is_empty() && now_ms - v.created_ms >= DAY_MS)
            .min_by_key(|(_, v)| v.created_ms)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => removed.push(versions.remove(i).version_id),
            None => break,
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::ValueKind;

    fn v(id: &str, stages: &[&str], created_ms: i64) -> VersionRecord {
        VersionRecord {
            version_id: id.into(),
            stages: stages.iter().map(|s| (*s).to_string()).collect(),
            created_ms,
            last_accessed_ms: None,
            kind: ValueKind::String,
            empty: false,
        }
    }

    fn labels(versions: &[VersionRecord]) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<_> = versions
            .iter()
            .map(|v| {
                let mut s = v.stages.clone();
                s.sort();
                (v.version_id.clone(), s)
            })
            .collect();
        out.sort();
        out
    }

    fn expect(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<_> = pairs
            .iter()
            .map(|(id, s)| {
                let mut s: Vec<String> = s.iter().map(|x| (*x).to_string()).collect();
                s.sort();
                ((*id).to_string(), s)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn new_current_version_moves_current_to_previous() {
        let mut vs = vec![v("a", &["AWSCURRENT"], 0)];
        add_version(&mut vs, v("b", &[], 1), &["AWSCURRENT".into()]).unwrap();
        assert_eq!(
            labels(&vs),
            expect(&[("a", &["AWSPREVIOUS"]), ("b", &["AWSCURRENT"])])
        );
        add_version(&mut vs, v("c", &[], 2), &["AWSCURRENT".into()]).unwrap();
        assert_eq!(
            labels(&vs),
            expect(&[("a", &[]), ("b", &["AWSPREVIOUS"]), ("c", &["AWSCURRENT"])])
        );
    }

    #[test]
    fn custom_stage_on_new_version_leaves_current_alone() {
        let mut vs = vec![v("a", &["AWSCURRENT"], 0)];
        add_version(&mut vs, v("b", &[], 1), &["blue".into()]).unwrap();
        assert_eq!(
            labels(&vs),
            expect(&[("a", &["AWSCURRENT"]), ("b", &["blue"])])
        );
        add_version(&mut vs, v("c", &[], 2), &["blue".into()]).unwrap();
        assert_eq!(
            labels(&vs),
            expect(&[("a", &["AWSCURRENT"]), ("b", &[]), ("c", &["blue"])])
        );
    }

    #[test]
    fn update_stage_table() {
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Result<Vec<(&'static str, &'static [&'static str])>, &'static str>,
        );
        let cases: Vec<Case> = vec![
            // moving AWSCURRENT needs RemoveFromVersionId
            (
                "AWSCURRENT",
                None,
                Some("b"),
                Err("RemoveFromVersionId can't be empty"),
            ),
            (
                "AWSCURRENT",
                Some("a"),
                Some("b"),
                Ok(vec![("a", &["AWSPREVIOUS", "x"]), ("b", &["AWSCURRENT"])]),
            ),
            // a custom label held elsewhere also needs RemoveFromVersionId
            (
                "x",
                None,
                Some("b"),
                Err("RemoveFromVersionId can't be empty"),
            ),
            (
                "x",
                Some("a"),
                Some("b"),
                Ok(vec![("a", &["AWSCURRENT"]), ("b", &["AWSPREVIOUS", "x"])]),
            ),
            // a new label needs no RemoveFromVersionId
            (
                "y",
                None,
                Some("b"),
                Ok(vec![
                    ("a", &["AWSCURRENT", "x"]),
                    ("b", &["AWSPREVIOUS", "y"]),
                ]),
            ),
            // removing
            (
                "x",
                Some("a"),
                None,
                Ok(vec![("a", &["AWSCURRENT"]), ("b", &["AWSPREVIOUS"])]),
            ),
            ("x", Some("b"), None, Err("not attached to version b")),
            (
                "AWSCURRENT",
                Some("a"),
                None,
                Err("can't remove the staging label AWSCURRENT"),
            ),
            ("x", None, None, Err("must specify")),
            // unknown versions
            (
                "x",
                Some("zz"),
                None,
                Err("can't find the specified secret version: zz"),
            ),
            (
                "x",
                None,
                Some("zz"),
                Err("can't find the specified secret version: zz"),
            ),
            // moving onto its own holder is a no-op
            (
                "AWSCURRENT",
                Some("a"),
                Some("a"),
                Ok(vec![("a", &["AWSCURRENT", "x"]), ("b", &["AWSPREVIOUS"])]),
            ),
        ];
        for (stage, from, to, want) in cases {
            let mut vs = vec![v("a", &["AWSCURRENT", "x"], 0), v("b", &["AWSPREVIOUS"], 1)];
            let got = update_stage(&mut vs, stage, from, to);
            match want {
                Ok(pairs) => {
                    assert!(got.is_ok(), "{stage} {from:?} {to:?}: {got:?}");
                    assert_eq!(labels(&vs), expect(&pairs), "{stage} {from:?} {to:?}");
                }
                Err(fragment) => {
                    let msg = got.expect_err("should fail").to_string();
                    assert!(msg.contains(fragment), "{stage} {from:?} {to:?}: {msg}");
                }
            }
        }
    }

    #[test]
    fn at_most_twenty_labels() {
        let mut vs = vec![v("a", &["AWSCURRENT"], 0)];
        let labels: Vec<String> = (0..19).map(|i| format!("l{i}")).collect();
        add_version(&mut vs, v("b", &[], 1), &labels).unwrap();
        let err = add_version(&mut vs, v("c", &[], 2), &["one-more".into()]).unwrap_err();
        assert!(matches!(err, CoreError::LimitExceeded(_)));
    }

    #[test]
    fn prune_keeps_labelled_and_young_versions() {
        let now = 10 * DAY_MS;
        let mut vs: Vec<VersionRecord> = (0..105).map(|i| v(&format!("v{i:03}"), &[], i)).collect();
        vs[0].stages.push("AWSCURRENT".into());
        // the five youngest are less than a day old
        for x in vs.iter_mut().skip(100) {
            x.created_ms = now - 1000;
        }
        let removed = prune(&mut vs, now);
        assert_eq!(removed, vec!["v001", "v002", "v003", "v004", "v005"]);
        assert_eq!(vs.len(), 100);
        assert!(vs.iter().any(|x| x.version_id == "v000"));

        let mut young: Vec<VersionRecord> =
            (0..101).map(|i| v(&format!("y{i}"), &[], now)).collect();
        assert!(prune(&mut young, now).is_empty());
        assert_eq!(young.len(), 101);
    }
}
