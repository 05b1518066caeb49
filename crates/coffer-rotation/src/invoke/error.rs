//! Why a step failed, in words an operator can act on.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::Step;

/// A rotation step that did not succeed: which function, which step, what happened, and
/// (in `Display`) what to check. Quoted output is cut, cleaned and redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeError {
    /// The function's ARN, when invoked through [`super::RotationFunction`].
    pub function: Option<String>,
    /// Where the function runs.
    pub target: Target,
    pub step: Step,
    pub kind: InvokeErrorKind,
}

/// Where a failed function runs, as `Display` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The webhook's URL without user info, query or fragment (they may carry tokens).
    Webhook {
        url: String,
    },
    Executable {
        program: PathBuf,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Webhook { url } => write!(f, "webhook {url}"),
            Target::Executable { program } => write!(f, "executable {}", program.display()),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvokeErrorKind {
    /// The registration cannot be used as it is (URL, CA bundle, header values).
    Config { reason: String },
    /// No connection to the webhook (refused, unreachable, name not found).
    Connect { reason: String },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    Tls { reason: String },
    /// The HTTP exchange broke off (connection closed, malformed answer).
    Http { reason: String },
    /// The webhook answered with a status other than 2xx.
    Status {
        status: u16,
        /// Where a redirect pointed (coffer does not follow it).
        location: Option<String>,
        /// The start of the response body.
        body: String,
    },
    /// The program could not be started.
    Spawn { reason: String },
    /// The program exited with a non-zero status or was killed by a signal.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        stderr: String,
        stdout: String,
    },
    /// Talking to the program failed (waiting for it).
    Io { reason: String },
    /// No complete answer within the timeout. For an executable, its process group was
    /// killed, and `output` is the tail of what it wrote to stderr (or stdout) until then.
    Timeout { after: Duration, output: String },
}

impl InvokeError {
    pub(crate) fn new(target: Target, step: Step, kind: InvokeErrorKind) -> Self {
        Self {
            function: None,
            target,
            step,
            kind,
        }
    }

    pub(crate) fn for_function(mut self, arn: &str) -> Self {
        self.function = Some(arn.to_owned());
        self
    }

    /// True for [`InvokeErrorKind::Timeout`].
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, InvokeErrorKind::Timeout { .. })
    }
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.function {
            Some(arn) => write!(f, "rotation function {arn} ({})", self.target)?,
            None => write!(f, "rotation function ({})", self.target)?,
        }
        write!(f, " failed at step {}: ", self.step)?;
        match &self.kind {
            InvokeErrorKind::Config { reason } => write!(
                f,
                "its registration cannot be used: {reason}. Check the function's registration."
            ),
            InvokeErrorKind::Connect { reason } => write!(
                f,
                "could not connect: {reason}. Check that the webhook is running and reachable \
                 from coffer's host at this address and port."
            ),
            InvokeErrorKind::Tls { reason } => write!(
                f,
                "the TLS handshake failed: {reason}. Check that the webhook's certificate is \
                 valid for the host name in the URL and issued by the configured CA bundle \
                 (or by a public CA when none is configured)."
            ),
            InvokeErrorKind::Http { reason } => write!(
                f,
                "the HTTP exchange failed: {reason}. Check the webhook's own logs; it must \
                 answer an HTTP/1.1 POST."
            ),
            InvokeErrorKind::Status {
                status,
                location,
                body,
            } => {
                write!(f, "the webhook answered HTTP {status}")?;
                if let Some(reason) = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                {
                    write!(f, " {reason}")?;
                }
                if (300..400).contains(status) {
                    write!(f, " (a redirect")?;
                    if let Some(location) = location {
                        write!(f, " to {location}")?;
                    }
                    write!(f, ", which coffer never follows: register the final URL)")?;
                }
                if !body.is_empty() {
                    write!(f, "; response body: {body}")?;
                }
                write!(
                    f,
                    ". Only a 2xx status counts as success; check the webhook's own logs."
                )
            }
            InvokeErrorKind::Spawn { reason } => write!(
                f,
                "could not start the program: {reason}. Check the path, that coffer's user \
                 may execute it (mode, a #! line naming an installed interpreter) and the \
                 working directory."
            ),
            InvokeErrorKind::Exited {
                code,
                signal,
                stderr,
                stdout,
            } => {
                match (code, signal) {
                    (Some(code), _) => write!(f, "the program exited with status {code}")?,
                    (None, Some(signal)) => {
                        write!(f, "the program was killed by signal {signal}")?;
                    }
                    (None, None) => write!(f, "the program failed")?,
                }
                if !stderr.is_empty() {
                    write!(f, "; the end of its stderr:\n{}\n", last_lines(stderr))?;
                } else if !stdout.is_empty() {
                    let stdout = last_lines(stdout);
                    write!(f, "; stderr was empty, the end of its stdout:\n{stdout}\n")?;
                } else {
                    write!(f, " and wrote nothing. ")?;
                }
                write!(
                    f,
                    "Only exit status 0 counts as success; to reproduce, run it by hand with \
                     the event JSON on stdin."
                )
            }
            InvokeErrorKind::Io { reason } => {
                write!(f, "{reason}.")
            }
            InvokeErrorKind::Timeout { after, output } => {
                let secs = after.as_secs_f64();
                if matches!(self.target, Target::Webhook { .. }) {
                    write!(f, "no complete answer within the timeout of {secs} s")?;
                } else {
                    write!(
                        f,
                        "still running after the timeout of {secs} s, so coffer killed it \
                         and its process group"
                    )?;
                }
                if !output.is_empty() {
                    write!(f, "; the end of its output:\n{}\n", last_lines(output))?;
                } else {
                    write!(f, ". ")?;
                }
                write!(
                    f,
                    "Check what the function waits on (the service whose credential it \
                     rotates, the network, coffer's endpoint) or give it a longer timeout."
                )
            }
        }
    }
}

impl std::error::Error for InvokeError {}

/// How many lines of quoted output `Display` shows (the fields keep a few KB).
const DISPLAY_LINES: usize = 20;

/// The last [`DISPLAY_LINES`] lines of `text`.
fn last_lines(text: &str) -> &str {
    match text.rmatch_indices('\n').nth(DISPLAY_LINES - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

/// An error and its sources, `: `-joined (hyper's and rustls' top-level messages alone are
/// too terse to act on).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}
