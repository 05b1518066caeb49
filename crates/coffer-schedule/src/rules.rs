//! `RotationRules` as `RotateSecret` receives them, and the checks of the service model.

use crate::error::ScheduleError;

/// Secrets Manager's `RotationRulesType`, member for member, as received or as
/// `DescribeSecret` and `ListSecrets` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RotationRules {
    /// `AutomaticallyAfterDays`: days between rotations (model: long, 1..=1000).
    pub automatically_after_days: Option<i64>,
    /// `Duration`: the rotation window length, e.g. `3h` (model: 2..=3 characters,
    /// pattern `[0-9]+h`).
    pub duration: Option<String>,
    /// `ScheduleExpression`: `rate(...)` or `cron(...)` (model: 1..=256 characters, pattern
    /// `[0-9A-Za-z\(\)#\?\*\-\/, ]+`).
    pub schedule_expression: Option<String>,
}

/// The `ScheduleExpressionType` pattern, as AWS prints it in a validation message.
const SCHEDULE_PATTERN: &str = r"[0-9A-Za-z\(\)#\?\*\-\/, ]+";
/// The `DurationType` pattern, as AWS prints it in a validation message.
const DURATION_PATTERN: &str = "[0-9]+h";

fn schedule_pattern_matches(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"()#?*-/, ".contains(&b))
}

fn duration_pattern_matches(s: &str) -> bool {
    match s.strip_suffix('h') {
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Every model constraint the rules break, in AWS's "Value '…' at '…' failed to satisfy
/// constraint: …" form (members in model order, length before pattern).
fn model_violations(rules: &RotationRules) -> Vec<String> {
    let mut out = Vec::new();
    let mut violation = |value: &str, member: &str, constraint: String| {
        out.push(format!(
            "Value '{value}' at 'rotationRules.{member}' failed to satisfy constraint: {constraint}"
        ));
    };
    if let Some(days) = rules.automatically_after_days {
        if days < 1 {
            violation(
                &days.to_string(),
                "automaticallyAfterDays",
                "Member must have value greater than or equal to 1".into(),
            );
        } else if days > 1000 {
            violation(
                &days.to_string(),
                "automaticallyAfterDays",
                "Member must have value less than or equal to 1000".into(),
            );
        }
    }
    if let Some(duration) = &rules.duration {
        let n = duration.chars().count();
        if n < 2 {
            violation(
                duration,
                "duration",
                "Member must have length greater than or equal to 2".into(),
            );
        } else if n > 3 {
            violation(
                duration,
                "duration",
                "Member must have length less than or equal to 3".into(),
            );
        }
        if !duration_pattern_matches(duration) {
            violation(
                duration,
                "duration",
                format!("Member must satisfy regular expression pattern: {DURATION_PATTERN}"),
            );
        }
    }
    if let Some(expr) = &rules.schedule_expression {
        let n = expr.chars().count();
        if n < 1 {
            violation(
                expr,
                "scheduleExpression",
                "Member must have length greater than or equal to 1".into(),
            );
        } else if n > 256 {
            violation(
                expr,
                "scheduleExpression",
                "Member must have length less than or equal to 256".into(),
            );
        }
        if !schedule_pattern_matches(expr) {
            violation(
                expr,
                "scheduleExpression",
                format!("Member must satisfy regular expression pattern: {SCHEDULE_PATTERN}"),
            );
        }
    }
    out
}

/// AWS's `ValidationException` for the model constraints the rules break, if any:
/// "1 validation error detected: …", or "N validation errors detected: …; …".
pub(crate) fn check_model(rules: &RotationRules) -> Result<(), ScheduleError> {
    let violations = model_violations(rules);
    match violations.len() {
        0 => Ok(()),
        1 => Err(ScheduleError::validation(format!(
            "1 validation error detected: {}",
            violations.join("; ")
        ))),
        n => Err(ScheduleError::validation(format!(
            "{n} validation errors detected: {}",
            violations.join("; ")
        ))),
    }
}
