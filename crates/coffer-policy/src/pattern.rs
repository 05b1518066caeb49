//! Patterns compiled once at parse time: `*` and `?` wildcards and policy variables
//! (`${aws:username}`, `${aws:PrincipalTag/team, 'default'}`, and the escapes `${*}`, `${?}`,
//! `${$}`), matched against request values without allocating.
//!
//! This module owns the pattern grammar and the matcher. It must never look inside ARNs (that is
//! `arn` in `condition.rs` and the resource rules in `statement.rs`) nor decide what a missing
//! variable means beyond "this pattern matches nothing".

/// Resolves a policy variable (a context key, lower-cased) to its single value.
pub(crate) trait Variables {
    fn variable(&self, key_lower: &str) -> Option<&str>;
}

/// No variables at all: for patterns that cannot hold any.
pub(crate) struct NoVariables;

impl Variables for NoVariables {
    fn variable(&self, _key_lower: &str) -> Option<&str> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    /// `*`: any run of characters, including none.
    Many,
    /// `?`: exactly one character.
    One,
    /// `${key}` or `${key, 'default'}`; `slot` indexes the resolved values at match time.
    Variable {
        key_lower: Box<str>,
        default: Option<Box<str>>,
        slot: usize,
    },
}

/// Which syntax a pattern's text uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    pub wildcards: bool,
    pub variables: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Box<[Piece]>,
    /// Set when the pattern is one literal: compared directly.
    exact: Option<Box<str>>,
    /// Set when the pattern is `*` alone.
    any: bool,
    variable_count: usize,
}

/// At most this many variables are resolved on the stack; a pattern with more resolves them
/// into a `Vec` (no real policy comes near it).
const INLINE_VARIABLES: usize = 8;

impl Pattern {
    pub(crate) fn compile(text: &str, syntax: Syntax) -> Pattern {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut variable_count = 0;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = &rest[2..end];
                // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
                // ("Special characters"): `${*}`, `${?}` and `${$}` stand for the literal
                // characters where they would otherwise be wildcards or a variable.
                match inner {
                    "*" | "?" | "$" => literal.push_str(inner),
                    _ => {
                        let (key, default) = split_default(inner);
                        if key.is_empty() {
                            literal.push_str(&rest[..=end]);
                        } else {
                            flush(&mut pieces, &mut literal);
                            pieces.push(Piece::Variable {
                                key_lower: key.to_ascii_lowercase().into(),
                                default: default.map(Into::into),
                                slot: variable_count,
                            });
                            variable_count += 1;
                        }
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
            if syntax.wildcards && (c == '*' || c == '?') {
                flush(&mut pieces, &mut literal);
                // Consecutive stars are one star; keeping them would only slow the matcher.
                if !(c == '*' && pieces.last() == Some(&Piece::Many)) {
                    pieces.push(if c == '*' { Piece::Many } else { Piece::One });
                }
            } else {
                literal.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut pieces, &mut literal);
        let exact = match pieces.as_slice() {
            [] => Some(Box::<str>::from("")),
            [Piece::Literal(s)] => Some(s.clone()),
            _ => None,
        };
        let any = pieces.as_slice() == [Piece::Many];
        Pattern {
            pieces: pieces.into_boxed_slice(),
            exact,
            any,
            variable_count,
        }
    }

    /// Whether `text` matches. `ignore_case` compares ASCII letters case-insensitively (action
    /// names); otherwise comparison is exact. A variable that cannot be resolved and has no
    /// default makes the pattern match nothing: AWS treats its value as null, which "has no
    /// equal or like value" (reference_policies_variables.html, "Policy variables with no
    /// value").
    pub(crate) fn matches(&self, text: &str, ignore_case: bool, vars: &dyn Variables) -> bool {
        if self.any {
            return true;
        }
        if let Some(exact) = &self.exact {
            return if ignore_case {
                exact.eq_ignore_ascii_case(text)
            } else {
                **exact == *text
            };
        }
        if self.variable_count == 0 {
            return glob(&self.pieces, &[], text, ignore_case);
        }
        if self.variable_count <= INLINE_VARIABLES {
            let mut resolved: [&str; INLINE_VARIABLES] = [""; INLINE_VARIABLES];
            if !self.resolve(vars, &mut resolved) {
                return false;
            }
            glob(&self.pieces, &resolved, text, ignore_case)
        } else {
            let mut resolved = vec![""; self.variable_count];
            if !self.resolve(vars, &mut resolved) {
                return false;
            }
            glob(&self.pieces, &resolved, text, ignore_case)
        }
    }

    /// The pattern's text with its variables resolved, for operators that compare whole values
    /// (numbers, booleans). `None` when a variable has no value.
    pub(crate) fn literal_with<'a>(
        &'a self,
        vars: &'a dyn Variables,
    ) -> Option<std::borrow::Cow<'a, str>> {
        if let Some(exact) = &self.exact {
            return Some(std::borrow::Cow::Borrowed(exact));
        }
        let mut out = String::new();
        for piece in self.pieces.iter() {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Many => out.push('*'),
                Piece::One => out.push('?'),
                Piece::Variable {
                    key_lower, default, ..
                } => out.push_str(vars.variable(key_lower).or(default.as_deref())?),
            }
        }
        Some(std::borrow::Cow::Owned(out))
    }

    fn resolve<'a>(&'a self, vars: &'a dyn Variables, resolved: &mut [&'a str]) -> bool {
        for piece in self.pieces.iter() {
            if let Piece::Variable {
                key_lower,
                default,
                slot,
            } = piece
            {
                match vars.variable(key_lower).or(default.as_deref()) {
                    Some(value) => resolved[*slot] = value,
                    None => return false,
                }
            }
        }
        true
    }
}

/// `key, 'default'` → (`key`, Some(`default`)). The syntax is documented in
/// reference_policies_variables.html ("Specifying default values"): the default is in single
/// quotes, separated from the key by a comma and a space.
fn split_default(inner: &str) -> (&str, Option<&str>) {
    if let Some((key, rest)) = inner.split_once(',') {
        let rest = rest.trim();
        if rest.len() >= 2 && rest.starts_with('\'') && rest.ends_with('\'') {
            return (key.trim(), Some(&rest[1..rest.len() - 1]));
        }
    }
    (inner.trim(), None)
}

fn flush(pieces: &mut Vec<Piece>, literal: &mut String) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal).into_boxed_str()));
    }
}

enum Element {
    Char(char),
    Many,
    One,
}

/// A position in the pattern: piece index and byte offset inside a literal or resolved variable.
#[derive(Clone, Copy)]
struct Pos {
    piece: usize,
    offset: usize,
}

fn next_element(pieces: &[Piece], resolved: &[&str], mut pos: Pos) -> Option<(Element, Pos)> {
    loop {
        let piece = pieces.get(pos.piece)?;
        let text: &str = match piece {
            Piece::Many => {
                return Some((
                    Element::Many,
                    Pos {
                        piece: pos.piece + 1,
                        offset: 0,
                    },
                ));
            }
            Piece::One => {
                return Some((
                    Element::One,
                    Pos {
                        piece: pos.piece + 1,
                        offset: 0,
                    },
                ));
            }
            Piece::Literal(s) => s,
            Piece::Variable { slot, .. } => resolved.get(*slot).copied().unwrap_or(""),
        };
        if let Some(c) = text.get(pos.offset..).and_then(|t| t.chars().next()) {
            return Some((
                Element::Char(c),
                Pos {
                    piece: pos.piece,
                    offset: pos.offset + c.len_utf8(),
                },
            ));
        }
        pos = Pos {
            piece: pos.piece + 1,
            offset: 0,
        };
    }
}

fn chars_equal(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.eq_ignore_ascii_case(&b))
}

/// Wildcard matching with one backtracking point (the last `*`), linear in practice and never
/// exponential: the classic greedy algorithm.
fn glob(pieces: &[Piece], resolved: &[&str], text: &str, ignore_case: bool) -> bool {
    let mut p = Pos {
        piece: 0,
        offset: 0,
    };
    let mut t = 0usize;
    let mut star: Option<(Pos, usize)> = None;
    loop {
        let here = text.get(t..).and_then(|s| s.chars().next());
        match (next_element(pieces, resolved, p), here) {
            (Some((Element::Many, next)), _) => {
                star = Some((next, t));
                p = next;
                continue;
            }
            (Some((Element::One, next)), Some(c)) => {
                p = next;
                t += c.len_utf8();
                continue;
            }
            (Some((Element::Char(pc), next)), Some(c)) if chars_equal(pc, c, ignore_case) => {
                p = next;
                t += c.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        match star {
            Some((after_star, start)) => match text.get(start..).and_then(|s| s.chars().next()) {
                Some(c) => {
                    let start = start + c.len_utf8();
                    star = Some((after_star, start));
                    p = after_star;
                    t = start;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vars(&'static [(&'static str, &'static str)]);
    impl Variables for Vars {
        fn variable(&self, key_lower: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| *k == key_lower)
                .map(|(_, v)| *v)
        }
    }

    const FULL: Syntax = Syntax {
        wildcards: true,
        variables: true,
    };

    #[test]
    fn wildcard_table() {
        let cases: &[(&str, &str, bool, bool)] = &[
            ("*", "", false, true),
            ("*", "anything", false, true),
            ("a*c", "abc", false, true),
            ("a*c", "ac", false, true),
            ("a*c", "abcd", false, false),
            ("a?c", "abc", false, true),
            ("a?c", "ac", false, false),
            ("a?c", "aéc", false, true),
            ("*:Get*", "secretsmanager:GetSecretValue", false, true),
            ("*a*b*a*", "xaxbxxa", false, true),
            ("*a*b*a*", "xaxbxx", false, false),
            ("s3:get*", "S3:GetObject", true, true),
            ("s3:get*", "S3:GetObject", false, false),
            ("abc", "ABC", true, true),
            ("abc", "ABC", false, false),
            ("", "", false, true),
            ("", "a", false, false),
            ("a**b", "ab", false, true),
            ("${*}", "*", false, true),
            ("${*}", "x", false, false),
            ("${?}${$}", "?$", false, true),
        ];
        for (pattern, text, ignore_case, expected) in cases {
            let p = Pattern::compile(pattern, FULL);
            assert_eq!(
                p.matches(text, *ignore_case, &NoVariables),
                *expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn variables_resolve_or_match_nothing() {
        let vars = Vars(&[("aws:username", "alice"), ("aws:principaltag/team", "red")]);
        let cases: &[(&str, &str, bool)] = &[
            ("home/${aws:username}/*", "home/alice/x", true),
            ("home/${aws:USERNAME}/*", "home/alice/x", true),
            ("home/${aws:username}/*", "home/bob/x", false),
            ("b-${aws:PrincipalTag/team, 'all'}", "b-red", true),
            ("b-${aws:PrincipalTag/dept, 'all'}", "b-all", true),
            ("b-${aws:PrincipalTag/dept}", "b-", false),
            ("b-${aws:PrincipalTag/dept}*", "b-anything", false),
            // The resolved value is literal: a `*` in it would not be a wildcard.
            ("${aws:username}", "alice", true),
        ];
        for (pattern, text, expected) in cases {
            let p = Pattern::compile(pattern, FULL);
            assert_eq!(
                p.matches(text, false, &vars),
                *expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn without_variable_syntax_the_text_is_literal() {
        let p = Pattern::compile(
            "home/${aws:username}",
            Syntax {
                wildcards: true,
                variables: false,
            },
        );
        assert!(p.matches("home/${aws:username}", false, &NoVariables));
    }
}
