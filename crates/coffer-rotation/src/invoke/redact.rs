//! Making a function's output fit to quote in an error or a log: a bounded window of it,
//! with the credentials it was given (and could have echoed) redacted and control
//! characters removed.

/// What replaces a credential in quoted output.
const REDACTED: &[u8] = b"<redacted>";

/// A secret cut at the edge of a window is redacted when at least this many of its bytes
/// are in the window (fewer say next to nothing about it).
const MIN_PARTIAL: usize = 4;

/// Values shorter than this are not redacted: replacing every `a` would garble the text and
/// hide nothing.
const MIN_SECRET: usize = 6;

/// The values that must not appear in quoted output.
pub(crate) struct Redactor<'a> {
    secrets: Vec<&'a [u8]>,
}

impl<'a> Redactor<'a> {
    pub(crate) fn new(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut secrets: Vec<&[u8]> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// `window` as quotable text. `cut_start`/`cut_end` say the window was cut out of longer
    /// output there, so a secret may stand there in part.
    pub(crate) fn quote(&self, window: &[u8], cut_start: bool, cut_end: bool) -> String {
        let mut bytes = window.to_vec();
        for secret in &self.secrets {
            bytes = replace_all(&bytes, secret);
        }
        if cut_start {
            let cut = self
                .secrets
                .iter()
                .map(|s| longest_suffix_at_start(&bytes, s))
                .max()
                .unwrap_or(0);
            if cut > 0 {
                bytes.splice(..cut, REDACTED.iter().copied());
            }
        }
        if cut_end {
            let cut = self
                .secrets
                .iter()
                .map(|s| longest_prefix_at_end(&bytes, s))
                .max()
                .unwrap_or(0);
            if cut > 0 {
                let keep = bytes.len() - cut;
                bytes.truncate(keep);
                bytes.extend_from_slice(REDACTED);
            }
        }
        let mut text = clean(&String::from_utf8_lossy(&bytes));
        if cut_start {
            text.insert_str(0, "[…] ");
        }
        if cut_end {
            text.push_str(" […]");
        }
        text
    }
}

/// Every occurrence of `secret` in `bytes` replaced by [`REDACTED`].
fn replace_all(bytes: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(secret) {
            out.extend_from_slice(REDACTED);
            i += secret.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Length of the longest proper suffix of `secret` (at least [`MIN_PARTIAL`] bytes) that
/// `bytes` starts with; 0 if none.
fn longest_suffix_at_start(bytes: &[u8], secret: &[u8]) -> usize {
    (MIN_PARTIAL..secret.len())
        .rev()
        .find(|&k| bytes.starts_with(&secret[secret.len() - k..]))
        .unwrap_or(0)
}

/// Length of the longest proper prefix of `secret` (at least [`MIN_PARTIAL`] bytes) that
/// `bytes` ends with; 0 if none.
fn longest_prefix_at_end(bytes: &[u8], secret: &[u8]) -> usize {
    (MIN_PARTIAL..secret.len())
        .rev()
        .find(|&k| bytes.ends_with(&secret[..k]))
        .unwrap_or(0)
}

/// Text without control characters (newlines and tabs stay; `\r` goes, other controls and
/// escape sequences become `?`) and without trailing whitespace.
fn clean(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '\r')
        .map(|c| {
            if c == '\n' || c == '\t' || !is_unsafe(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    cleaned.trim_end().to_owned()
}

/// Control characters, and the Unicode format characters that reorder or hide text in a
/// terminal or a log viewer.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The last `cap` bytes of a stream, and whether anything before them was dropped.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    cap: usize,
    bytes: Vec<u8>,
    dropped: bool,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
            dropped: false,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > self.cap {
            let excess = self.bytes.len() - self.cap;
            self.bytes.drain(..excess);
            self.dropped = true;
        }
    }

    pub(crate) fn quote(&self, redactor: &Redactor<'_>) -> String {
        redactor.quote(&self.bytes, self.dropped, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG";

    #[test]
    fn whole_secrets_are_replaced() {
        let r = Redactor::new([SECRET, b"abc".as_slice()]);
        let text = r.quote(b"key=wJalrXUtnFEMI/K7MDENG and abc", false, false);
        assert_eq!(text, "key=<redacted> and abc");
    }

    #[test]
    fn secrets_cut_at_the_edges_are_replaced() {
        let r = Redactor::new([SECRET]);
        assert_eq!(
            r.quote(b"FEMI/K7MDENG tail", true, false),
            "[…] <redacted> tail"
        );
        assert_eq!(r.quote(b"head wJalrXU", false, true), "head <redacted> […]");
        // Not cut: a fragment is just text.
        assert_eq!(r.quote(b"head wJalrXU", false, false), "head wJalrXU");
    }

    #[test]
    fn control_characters_are_removed() {
        let r = Redactor::new([]);
        assert_eq!(
            r.quote(b"a\x1b[31mred\r\n\tb\x00\n\n", false, false),
            "a?[31mred\n\tb?"
        );
    }

    #[test]
    fn tail_keeps_the_end_and_redacts_a_secret_cut_by_it() {
        let r = Redactor::new([SECRET]);
        let mut tail = Tail::new(16);
        tail.push(b"0123456789");
        tail.push(b"wJalrXUtnFEMI/K7MDENG!");
        let quoted = tail.quote(&r);
        assert_eq!(quoted, "[…] <redacted>!");
    }
}
