//! The `Condition` element: every operator family, the `IfExists` suffix and the
//! `ForAllValues:`/`ForAnyValue:` set qualifiers, compiled at parse time.
//!
//! This module owns what a condition means against a request context, following
//! reference_policies_elements_condition_operators.html and
//! reference_policies_condition-single-vs-multi-valued-context-keys.html. It must never look at
//! the statement around it (effect, actions, resources).

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{PolicyError, msg};
use crate::pattern::{Pattern, Syntax, Variables};
use crate::values::{Cidr, parse_bool, parse_date, parse_number};

/// Context values as the evaluator sees them: a key's values, if the request has the key.
pub(crate) trait ContextValues: Variables {
    fn values(&self, key_lower: &str) -> Option<&[String]>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Single,
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Compare {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Compare::Equal => request == policy,
            Compare::Less => request < policy,
            Compare::LessOrEqual => request <= policy,
            Compare::Greater => request > policy,
            Compare::GreaterOrEqual => request >= policy,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// String operators; `like` enables wildcards, `ignore_case` the IgnoreCase forms.
    String {
        ignore_case: bool,
        patterns: Vec<Pattern>,
    },
    Numeric(Compare, Vec<f64>),
    Date(Compare, Vec<i64>),
    Bool(Vec<Pattern>),
    Binary(Vec<Box<str>>),
    Ip(Vec<Cidr>),
    Arn(Vec<ArnPattern>),
    /// `Null`: true tests that the key is absent, false that it is present.
    Null(Vec<bool>),
}

/// One operator with one key, e.g. `"StringLike": {"s3:prefix": ["home/*"]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    key_lower: Box<str>,
    qualifier: Qualifier,
    negated: bool,
    if_exists: bool,
    test: Test,
}

/// Parses a `Condition` block. `variables` is false for documents without
/// `"Version": "2012-10-17"`, where `${…}` is literal text
/// (reference_policies_elements_version.html).
pub(crate) fn parse_block(block: &Value, variables: bool) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = block else {
        return Err(PolicyError::malformed(msg::SYNTAX));
    };
    let mut out = Vec::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return Err(PolicyError::malformed(msg::SYNTAX));
        };
        for (key, values) in keys {
            out.push(parse_one(operator, key, values, variables)?);
        }
    }
    Ok(out)
}

fn parse_one(
    operator: &str,
    key: &str,
    values: &Value,
    variables: bool,
) -> Result<Condition, PolicyError> {
    // Condition keys are case-insensitive (reference_policies_elements_condition.html, "The
    // condition context key names are not case-sensitive"), so they are stored lower-cased;
    // the request context lower-cases its keys once on insert.
    match key.split_once(':') {
        Some((vendor, rest)) if !vendor.is_empty() && !rest.is_empty() => {}
        _ => return Err(PolicyError::malformed(msg::VENDOR_PREFIX)),
    }
    let (qualifier, rest) = if let Some(rest) = strip_prefix_ci(operator, "ForAllValues:") {
        (Qualifier::ForAllValues, rest)
    } else if let Some(rest) = strip_prefix_ci(operator, "ForAnyValue:") {
        (Qualifier::ForAnyValue, rest)
    } else {
        (Qualifier::Single, operator)
    };
    let (base, if_exists) = match strip_suffix_ci(rest, "IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let texts = value_texts(values)?;
    let string_syntax = |like: bool| Syntax {
        wildcards: like,
        variables,
    };
    let strings = |like: bool| -> Vec<Pattern> {
        texts
            .iter()
            .map(|t| Pattern::compile(t, string_syntax(like)))
            .collect()
    };
    let lower = base.to_ascii_lowercase();
    let (negated, test) = match lower.as_str() {
        "stringequals" => (false, string_test(false, strings(false))),
        "stringnotequals" => (true, string_test(false, strings(false))),
        "stringequalsignorecase" => (false, string_test(true, strings(false))),
        "stringnotequalsignorecase" => (true, string_test(true, strings(false))),
        "stringlike" => (false, string_test(false, strings(true))),
        "stringnotlike" => (true, string_test(false, strings(true))),
        "numericequals" => (false, Test::Numeric(Compare::Equal, numbers(&texts)?)),
        "numericnotequals" => (true, Test::Numeric(Compare::Equal, numbers(&texts)?)),
        "numericlessthan" => (false, Test::Numeric(Compare::Less, numbers(&texts)?)),
        "numericlessthanequals" => (false, Test::Numeric(Compare::LessOrEqual, numbers(&texts)?)),
        "numericgreaterthan" => (false, Test::Numeric(Compare::Greater, numbers(&texts)?)),
        "numericgreaterthanequals" => (
            false,
            Test::Numeric(Compare::GreaterOrEqual, numbers(&texts)?),
        ),
        "dateequals" => (false, Test::Date(Compare::Equal, dates(&texts)?)),
        "datenotequals" => (true, Test::Date(Compare::Equal, dates(&texts)?)),
        "datelessthan" => (false, Test::Date(Compare::Less, dates(&texts)?)),
        "datelessthanequals" => (false, Test::Date(Compare::LessOrEqual, dates(&texts)?)),
        "dategreaterthan" => (false, Test::Date(Compare::Greater, dates(&texts)?)),
        "dategreaterthanequals" => (false, Test::Date(Compare::GreaterOrEqual, dates(&texts)?)),
        "bool" => (false, Test::Bool(strings(false))),
        "binaryequals" => (
            false,
            Test::Binary(texts.iter().map(|t| t.as_str().into()).collect()),
        ),
        "ipaddress" => (false, Test::Ip(cidrs(&texts)?)),
        "notipaddress" => (true, Test::Ip(cidrs(&texts)?)),
        // ArnEquals and ArnLike are the same test: both take wildcards in each of the six
        // components (reference_policies_elements_condition_operators.html, "ARN condition
        // operators").
        "arnequals" | "arnlike" => (false, Test::Arn(arns(&texts, variables))),
        "arnnotequals" | "arnnotlike" => (true, Test::Arn(arns(&texts, variables))),
        "null" if !if_exists => {
            let flags = texts
                .iter()
                .map(|t| parse_bool(t))
                .collect::<Option<Vec<bool>>>()
                .ok_or_else(|| PolicyError::malformed(msg::SYNTAX))?;
            (false, Test::Null(flags))
        }
        _ => return Err(PolicyError::malformed(msg::SYNTAX)),
    };
    Ok(Condition {
        key_lower: key.to_ascii_lowercase().into(),
        qualifier,
        negated,
        if_exists,
        test,
    })
}

fn string_test(ignore_case: bool, patterns: Vec<Pattern>) -> Test {
    Test::String {
        ignore_case,
        patterns,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

/// Condition values may be a string, a boolean, a number, or an array of them
/// (reference_policies_grammar.html, `<condition_value_list>`).
fn value_texts(values: &Value) -> Result<Vec<String>, PolicyError> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    match values {
        Value::Array(items) => items
            .iter()
            .map(one)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PolicyError::malformed(msg::SYNTAX)),
        other => one(other)
            .map(|s| vec![s])
            .ok_or_else(|| PolicyError::malformed(msg::SYNTAX)),
    }
}

fn numbers(texts: &[String]) -> Result<Vec<f64>, PolicyError> {
    texts
        .iter()
        .map(|t| parse_number(t).ok_or_else(|| PolicyError::malformed(msg::SYNTAX)))
        .collect()
}

fn dates(texts: &[String]) -> Result<Vec<i64>, PolicyError> {
    texts
        .iter()
        .map(|t| parse_date(t).ok_or_else(|| PolicyError::malformed(msg::SYNTAX)))
        .collect()
}

fn cidrs(texts: &[String]) -> Result<Vec<Cidr>, PolicyError> {
    texts
        .iter()
        .map(|t| Cidr::parse(t).ok_or_else(|| PolicyError::malformed(msg::SYNTAX)))
        .collect()
}

fn arns(texts: &[String], variables: bool) -> Vec<ArnPattern> {
    texts
        .iter()
        .map(|t| ArnPattern::compile(t, variables))
        .collect()
}

/// An ARN pattern checked component by component: "Each of the six colon-delimited components
/// of the ARN is checked separately and each can include multi-character match wildcards (*) or
/// single-character match wildcards (?)" (reference_policies_elements_condition_operators.html).
/// A pattern with fewer than six components (e.g. `*`) is matched against the whole value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArnPattern {
    Components(Box<[Pattern; 6]>),
    Whole(Pattern),
}

impl ArnPattern {
    pub(crate) fn compile(text: &str, variables: bool) -> ArnPattern {
        let syntax = Syntax {
            wildcards: true,
            variables,
        };
        let parts = split_arn_pattern(text, variables);
        match parts {
            Some([a, b, c, d, e, f]) => ArnPattern::Components(Box::new([
                Pattern::compile(a, syntax),
                Pattern::compile(b, syntax),
                Pattern::compile(c, syntax),
                Pattern::compile(d, syntax),
                Pattern::compile(e, syntax),
                Pattern::compile(f, syntax),
            ])),
            None => ArnPattern::Whole(Pattern::compile(text, syntax)),
        }
    }

    pub(crate) fn matches(&self, value: &str, vars: &dyn Variables) -> bool {
        match self {
            ArnPattern::Whole(p) => p.matches(value, false, vars),
            ArnPattern::Components(parts) => {
                let mut it = value.splitn(6, ':');
                parts.iter().all(|p| match it.next() {
                    Some(component) => p.matches(component, false, vars),
                    None => false,
                })
            }
        }
    }
}

/// Splits on the first five colons that are not inside `${…}` (a variable name such as
/// `aws:username` has a colon of its own).
fn split_arn_pattern(text: &str, variables: bool) -> Option<[&str; 6]> {
    let mut out = [""; 6];
    let mut start = 0;
    let mut n = 0;
    let mut depth = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && n < 5 {
        match bytes[i] {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => depth = true,
            b'}' if depth => depth = false,
            b':' if !depth => {
                out[n] = &text[start..i];
                n += 1;
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if n < 5 {
        return None;
    }
    out[5] = &text[start..];
    Some(out)
}

impl Condition {
    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, ctx: &dyn ContextValues) -> bool {
        let values = ctx.values(&self.key_lower).filter(|v| !v.is_empty());
        if let Test::Null(flags) = &self.test {
            // reference_policies_elements_condition_operators.html, "Condition operator to
            // check existence of condition keys": true means "the key is absent".
            let absent = values.is_none();
            return flags.contains(&absent);
        }
        let Some(values) = values else {
            // A missing key (or an empty set of values) is decided without looking at the
            // operator's values:
            // - `…IfExists`: "If the policy key is present in the context of the request,
            //   process the key as specified in the policy. If the key is not present, evaluate
            //   the condition element as true." (…condition_operators.html, IfExists)
            // - `ForAllValues:` "also returns true if there are no context keys in the
            //   request"; `ForAnyValue:` returns false
            //   (reference_policies_condition-single-vs-multi-valued-context-keys.html).
            // - otherwise: "If the key that you specify in a policy condition is not present
            //   in the request context, the values do not match and the condition is false. If
            //   the policy condition requires that the key is not matched, such as
            //   StringNotLike or ArnNotLike, and the right key is not present, the condition
            //   is true." (…condition_operators.html)
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::Single => self.negated,
                };
        };
        // A negated operator with several policy values is a NOR: the request value must
        // match none of them (reference_policies_multi-value-conditions.html).
        let satisfied = |value: &String| self.matches_any(value, ctx) != self.negated;
        match self.qualifier {
            Qualifier::ForAllValues => values.iter().all(satisfied),
            Qualifier::ForAnyValue => values.iter().any(satisfied),
            // Without a set qualifier a key is meant to be single-valued. With several values
            // anyway, a positive operator holds when one of them matches, a negated one when
            // none does: the safe reading for both Allow and Deny of the NOR rule above.
            Qualifier::Single => {
                if self.negated {
                    values.iter().all(satisfied)
                } else {
                    values.iter().any(satisfied)
                }
            }
        }
    }

    /// Whether one request value matches at least one of the policy's values (before negation).
    fn matches_any(&self, value: &str, ctx: &dyn ContextValues) -> bool {
        let vars: &dyn Variables = ctx_as_variables(ctx);
        match &self.test {
            Test::String {
                ignore_case,
                patterns,
            } => patterns
                .iter()
                .any(|p| p.matches(value, *ignore_case, vars)),
            Test::Numeric(cmp, numbers) => match parse_number(value) {
                Some(n) => numbers.iter().any(|&p| cmp.holds(n, p)),
                None => false,
            },
            Test::Date(cmp, dates) => match parse_date(value) {
                Some(d) => dates.iter().any(|&p| cmp.holds(d, p)),
                None => false,
            },
            Test::Bool(patterns) => match parse_bool(value) {
                Some(b) => patterns.iter().any(|p| {
                    p.literal_with(vars)
                        .and_then(|text| parse_bool(&text))
                        .is_some_and(|want| want == b)
                }),
                None => false,
            },
            Test::Binary(expected) => expected.iter().any(|e| **e == *value),
            Test::Ip(cidrs) => match value.trim().parse::<IpAddr>() {
                Ok(ip) => cidrs.iter().any(|c| c.contains(ip)),
                Err(_) => false,
            },
            Test::Arn(patterns) => patterns.iter().any(|p| p.matches(value, vars)),
            Test::Null(_) => false,
        }
    }
}

fn ctx_as_variables(ctx: &dyn ContextValues) -> &dyn Variables {
    ctx
}
