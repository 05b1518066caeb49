//! What a server is told when it starts: where its data lives, where it listens and how it
//! talks. The shapes make the dangerous combinations unrepresentable where they can
//! (`AcceptAnyCredentials` and the manual clock exist only in [`Mode::Dev`]) and
//! [`ServerConfig::validate`] refuses the rest before anything is opened or bound.
//!
//! The rotation functions a server registers at start ([`RotationFunctionConfig`]) share
//! their JSON shape with the admin socket's `rotation-function-register` request:
//!
//! ```json
//! {"arn": "arn:aws:lambda:us-east-1:111111111111:function:pg", "kind": "builtin",
//!  "engine": "postgres", "strategy": "alternating-users"}
//! {"arn": "…:function:hook", "kind": "webhook", "url": "https://rotator.internal/rotate",
//!  "signing_secret_env": "ROTATOR_SECRET", "timeout_secs": 60}
//! {"arn": "…:function:script", "kind": "executable", "program": "/usr/local/bin/rotate",
//!  "args": ["--verbose"], "timeout_secs": 120}
//! ```
//!
//! `account` may be given and must then be the ARN's; a file names a webhook's signing
//! secret by environment variable (`signing_secret_env`), the admin socket carries it
//! (`signing_secret`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_core::rotation::{
    DEFAULT_FUNCTION_TIMEOUT_SECS, FunctionSpec, parse_engine, parse_strategy,
};
use coffer_core::{SecretBytes, Unlock};
use coffer_protocol::AuthMode;

use crate::error::ServerError;

/// `coffer server --data-dir`: HTTPS on loopback unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8443));
/// `coffer server --dev`: the port LocalStack users already point their SDKs at.
pub const DEFAULT_DEV_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4566));
/// The dev account, as in LocalStack and moto, so suites written for them find their ARNs.
pub const DEFAULT_DEV_ACCOUNT_ID: &str = "000000000000";
/// The region the dev server tells clients to use.
pub const DEV_REGION: &str = "us-east-1";
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// AWS documents 65,536 bytes as the largest secret value; base64 of a binary value, the
/// surrounding JSON and a resource policy (20,480 chars) fit in 2 MiB with a wide margin, and
/// nothing legitimate comes close.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How long shutdown waits for in-flight requests before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub mode: Mode,
    /// How often secrets whose recovery window has ended are purged.
    pub purge_interval: Duration,
    /// Requests with a larger body are answered with 413 without being read.
    pub max_body_bytes: usize,
    /// The bound on finishing in-flight requests after the shutdown signal.
    pub shutdown_grace: Duration,
    /// How a data directory's root key is unlocked (a dev server always uses a key file).
    pub unlock: Arc<Unlock>,
    /// Registered (or replaced) after the store opens and before the server serves; one that
    /// cannot be registered stops the start ([`ServerError::RotationFunction`]).
    pub rotation_functions: Vec<RotationFunctionConfig>,
    /// The audit trail: on unless turned off (`--no-audit`, for comparison benchmarks).
    pub audit: AuditOptions,
}

/// How the audit trail runs.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Record every call (the default). Off, nothing is recorded and LookupEvents fails.
    pub enabled: bool,
    /// Events older than this are pruned (whole segments, so verification still holds).
    /// `None` keeps everything.
    pub retention: Option<Duration>,
    /// Sinks and alert rules (`--audit-config FILE`).
    pub settings: crate::sinks::AuditSettings,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            retention: None,
            settings: crate::sinks::AuditSettings::default(),
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A data directory made by `coffer init`.
    DataDir { path: PathBuf, transport: Transport },
    /// A throw-away data directory, initialised at start and removed at exit; plain HTTP on
    /// loopback only.
    Dev(DevOptions),
}

/// How a data-directory server talks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with the certificate in `DATA_DIR/tls/` (see [`crate::TlsFiles`]).
    Tls,
    /// Plain HTTP. Refused on a non-loopback address unless `allow_non_loopback`, because
    /// every request carries secret values or credentials.
    InsecureHttp { allow_non_loopback: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOptions {
    /// The 12-digit id of the dev account.
    pub account_id: String,
    /// Take any access key as the dev account's root user without checking signatures.
    pub accept_any_credentials: bool,
    /// Use a clock that moves only when `POST /_coffer/clock/advance` says so, and enable the
    /// `/_coffer/` admin routes.
    pub manual_clock: bool,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            account_id: DEFAULT_DEV_ACCOUNT_ID.to_owned(),
            accept_any_credentials: false,
            manual_clock: false,
        }
    }
}

impl ServerConfig {
    /// A server over an initialised data directory, on [`DEFAULT_LISTEN`] with TLS.
    #[must_use]
    pub fn data_dir(path: impl Into<PathBuf>) -> Self {
        Self::with_mode(
            DEFAULT_LISTEN,
            Mode::DataDir {
                path: path.into(),
                transport: Transport::Tls,
            },
        )
    }

    /// A dev server on [`DEFAULT_DEV_LISTEN`].
    #[must_use]
    pub fn dev(options: DevOptions) -> Self {
        Self::with_mode(DEFAULT_DEV_LISTEN, Mode::Dev(options))
    }

    fn with_mode(listen: SocketAddr, mode: Mode) -> Self {
        Self {
            listen,
            mode,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            unlock: Arc::new(Unlock::File),
            rotation_functions: Vec::new(),
            audit: AuditOptions::default(),
        }
    }

    /// Refuses the combinations that would expose credentials or secrets.
    pub fn validate(&self) -> Result<(), ServerError> {
        let loopback = is_loopback(self.listen.ip());
        match &self.mode {
            Mode::Dev(_) if !loopback => Err(ServerError::DevNonLoopback { addr: self.listen }),
            Mode::DataDir {
                transport:
                    Transport::InsecureHttp {
                        allow_non_loopback: false,
                    },
                ..
            } if !loopback => Err(ServerError::InsecureNonLoopback { addr: self.listen }),
            Mode::Dev(_) | Mode::DataDir { .. } => {
                if self.purge_interval.is_zero() {
                    return Err(ServerError::InvalidConfig(
                        "the purge interval must be positive",
                    ));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn auth_mode(&self) -> AuthMode {
        match &self.mode {
            Mode::Dev(DevOptions {
                accept_any_credentials: true,
                ..
            }) => AuthMode::AcceptAnyCredentials,
            Mode::Dev(_) | Mode::DataDir { .. } => AuthMode::SigV4,
        }
    }

    /// Plain HTTP on an address other hosts can reach (allowed only when asked for explicitly).
    #[must_use]
    pub fn serves_plain_http_publicly(&self) -> bool {
        matches!(
            self.mode,
            Mode::DataDir {
                transport: Transport::InsecureHttp { .. },
                ..
            }
        ) && !is_loopback(self.listen.ip())
    }
}

/// The longest a webhook or executable may take for one step: Lambda's own limit.
pub const MAX_FUNCTION_TIMEOUT_SECS: u64 = 900;

/// A rotation function to register under a Lambda ARN: an entry of `coffer server
/// --rotation-functions FILE`, or the admin socket's `rotation-function-register` request.
#[derive(Debug, Clone)]
pub struct RotationFunctionConfig {
    pub account_id: String,
    pub arn: String,
    pub spec: FunctionSpec,
}

/// Where a webhook's signing secret may come from.
enum SigningSecret<'a> {
    /// In the request itself (`signing_secret`): the admin socket, which only the data
    /// directory's owner can reach.
    Inline,
    /// From the named environment variable (`signing_secret_env`): a file on disk must not
    /// hold the secret.
    Environment(&'a dyn Fn(&str) -> Option<String>),
}

const FIELDS: [&str; 11] = [
    "account",
    "arn",
    "kind",
    "engine",
    "strategy",
    "url",
    "signing_secret",
    "signing_secret_env",
    "timeout_secs",
    "program",
    "args",
];

impl RotationFunctionConfig {
    /// The admin socket's `rotation-function-register` JSON (signing secret inline). Errors
    /// never contain a value from the request.
    pub fn from_request(json: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("the request is not valid JSON: {}", json_position(&e)))?;
        Self::from_value(value, &SigningSecret::Inline)
    }

    /// The entries of a `--rotation-functions` file: a JSON list of functions; signing
    /// secrets come from the environment variables the entries name. The error names the
    /// file, the entry (by position and ARN) and what is wrong with it.
    pub fn load_file(path: &Path) -> Result<Vec<Self>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse_list(&text, &|name| std::env::var(name).ok())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse_list(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Self>, String> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("not valid JSON: {}", json_position(&e)))?;
        let serde_json::Value::Array(entries) = value else {
            return Err(
                "must hold a JSON list of rotation functions, like [{\"arn\": \"arn:aws:lambda:us-east-1:111111111111:function:NAME\", \"kind\": \"webhook\", \"url\": \"https://…\"}]"
                    .to_owned(),
            );
        };
        let mut out: Vec<Self> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let number = index + 1;
            let arn = entry
                .get("arn")
                .and_then(serde_json::Value::as_str)
                .map(|arn| format!(" ({arn})"))
                .unwrap_or_default();
            let function = Self::from_value(entry, &SigningSecret::Environment(env))
                .map_err(|e| format!("entry {number}{arn}: {e}"))?;
            if let Some(first) = out.iter().position(|f| f.arn == function.arn) {
                return Err(format!(
                    "entry {number}{arn}: entry {} registers the same ARN; give each function its own ARN",
                    first + 1
                ));
            }
            out.push(function);
        }
        Ok(out)
    }

    fn from_value(value: serde_json::Value, secret: &SigningSecret<'_>) -> Result<Self, String> {
        let serde_json::Value::Object(mut fields) = value else {
            return Err(
                "a rotation function is a JSON object with \"arn\" and \"kind\"".to_owned(),
            );
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {unknown:?}; the fields are {}",
                FIELDS.join(", ")
            ));
        }
        let arn = text(&fields, "arn")?.ok_or(
            "\"arn\" is missing: give the Lambda ARN the function is registered under, like arn:aws:lambda:us-east-1:111111111111:function:NAME",
        )?;
        let kind = text(&fields, "kind")?
            .ok_or("\"kind\" is missing: give \"builtin\", \"webhook\" or \"executable\"")?;
        let allowed: &[&str] = match kind.as_str() {
            "builtin" => &["engine", "strategy"],
            "webhook" => &[
                "url",
                "signing_secret",
                "signing_secret_env",
                "timeout_secs",
            ],
            "executable" => &["program", "args", "timeout_secs"],
            other => {
                return Err(format!(
                    "unknown kind {other:?}; give \"builtin\", \"webhook\" or \"executable\""
                ));
            }
        };
        if let Some(extra) = fields.keys().find(|k| {
            !["account", "arn", "kind"].contains(&k.as_str()) && !allowed.contains(&k.as_str())
        }) {
            return Err(format!(
                "{extra:?} does not apply to a {kind} function (it takes {})",
                allowed.join(", ")
            ));
        }
        let account_id = match text(&fields, "account")? {
            Some(account) => account,
            None => arn.split(':').nth(4).map(str::to_owned).ok_or_else(|| {
                format!("{arn} is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)")
            })?,
        };
        let timeout_secs = match fields.get("timeout_secs") {
            None | Some(serde_json::Value::Null) => DEFAULT_FUNCTION_TIMEOUT_SECS,
            Some(v) => match v.as_u64() {
                Some(secs) if (1..=MAX_FUNCTION_TIMEOUT_SECS).contains(&secs) => secs,
                _ => {
                    return Err(format!(
                        "\"timeout_secs\" must be a whole number of seconds from 1 to {MAX_FUNCTION_TIMEOUT_SECS}"
                    ));
                }
            },
        };
        let spec = match kind.as_str() {
            "builtin" => {
                let engine = text(&fields, "engine")?
                    .ok_or("\"engine\" is missing: give \"postgres\" or \"mysql\"")?;
                let strategy = text(&fields, "strategy")?.ok_or(
                    "\"strategy\" is missing: give \"single-user\" or \"alternating-users\"",
                )?;
                FunctionSpec::Builtin {
                    engine: parse_engine(&engine).ok_or_else(|| {
                        format!("unknown engine {engine:?}; give \"postgres\" or \"mysql\"")
                    })?,
                    strategy: parse_strategy(&strategy).ok_or_else(|| {
                        format!(
                            "unknown strategy {strategy:?}; give \"single-user\" or \"alternating-users\""
                        )
                    })?,
                }
            }
            "webhook" => {
                let url = text(&fields, "url")?
                    .ok_or("\"url\" is missing: give the webhook's http:// or https:// URL")?;
                let signing_secret = match secret {
                    SigningSecret::Inline => {
                        if fields.contains_key("signing_secret_env") {
                            return Err("\"signing_secret_env\" belongs in a --rotation-functions file; a request carries the secret itself in \"signing_secret\"".to_owned());
                        }
                        match fields.remove("signing_secret") {
                            None | Some(serde_json::Value::Null) => None,
                            Some(serde_json::Value::String(s)) if !s.is_empty() => {
                                Some(SecretBytes::from(s))
                            }
                            Some(_) => {
                                return Err(
                                    "\"signing_secret\" must be a non-empty string".to_owned()
                                );
                            }
                        }
                    }
                    SigningSecret::Environment(env) => {
                        if fields.contains_key("signing_secret") {
                            return Err("a file must not hold the signing secret: put it in an environment variable of the server and name the variable with \"signing_secret_env\"".to_owned());
                        }
                        match text(&fields, "signing_secret_env")? {
                            None => None,
                            Some(name) => match env(&name) {
                                Some(s) if !s.is_empty() => Some(SecretBytes::from(s)),
                                Some(_) => {
                                    return Err(format!(
                                        "the environment variable {name} (signing_secret_env) is empty; put the webhook's signing secret in it"
                                    ));
                                }
                                None => {
                                    return Err(format!(
                                        "the environment variable {name} (signing_secret_env) is not set; export the webhook's signing secret in it before starting the server"
                                    ));
                                }
                            },
                        }
                    }
                };
                FunctionSpec::Webhook {
                    url,
                    signing_secret,
                    timeout_secs,
                }
            }
            _ => {
                let program = text(&fields, "program")?.ok_or(
                    "\"program\" is missing: give the absolute path of the executable, like /usr/local/bin/rotate",
                )?;
                let args = match fields.get("args") {
                    None | Some(serde_json::Value::Null) => Vec::new(),
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .map(|a| a.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("\"args\" must be a list of strings")?,
                    Some(_) => return Err("\"args\" must be a list of strings".to_owned()),
                };
                FunctionSpec::Executable {
                    program,
                    args,
                    timeout_secs,
                }
            }
        };
        Ok(Self {
            account_id,
            arn,
            spec,
        })
    }
}

/// A string field (absent or null is `None`); the error never shows the value.
fn text(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name:?} must be a string")),
    }
}

/// A syntax error of JSON parsed as a `Value`: what and where, never the text around it
/// (which may be a secret).
fn json_position(e: &serde_json::Error) -> String {
    e.to_string()
}

/// `::ffff:127.0.0.1` is loopback too; `0.0.0.0` and `::` (every interface) are not.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insecure(listen: &str, allow_non_loopback: bool) -> ServerConfig {
        let mut config = ServerConfig::data_dir("/nonexistent");
        config.mode = Mode::DataDir {
            path: "/nonexistent".into(),
            transport: Transport::InsecureHttp { allow_non_loopback },
        };
        config.listen = listen.parse().unwrap();
        config
    }

    fn dev(listen: &str) -> ServerConfig {
        let mut config = ServerConfig::dev(DevOptions::default());
        config.listen = listen.parse().unwrap();
        config
    }

    #[test]
    fn validation_table() {
        let cases: &[(&str, ServerConfig, bool)] = &[
            (
                "insecure on 127.0.0.1",
                insecure("127.0.0.1:0", false),
                true,
            ),
            ("insecure on ::1", insecure("[::1]:0", false), true),
            (
                "insecure on ::ffff:127.0.0.1",
                insecure("[::ffff:127.0.0.1]:0", false),
                true,
            ),
            ("insecure on 0.0.0.0", insecure("0.0.0.0:0", false), false),
            ("insecure on ::", insecure("[::]:0", false), false),
            ("insecure on 10.1.2.3", insecure("10.1.2.3:0", false), false),
            (
                "insecure on 0.0.0.0, allowed",
                insecure("0.0.0.0:0", true),
                true,
            ),
            (
                "tls on 0.0.0.0",
                {
                    let mut c = ServerConfig::data_dir("/x");
                    c.listen = "0.0.0.0:0".parse().unwrap();
                    c
                },
                true,
            ),
            ("dev on 127.0.0.1", dev("127.0.0.1:0"), true),
            ("dev on ::1", dev("[::1]:0"), true),
            ("dev on 0.0.0.0", dev("0.0.0.0:0"), false),
            ("dev on 192.168.1.1", dev("192.168.1.1:0"), false),
        ];
        for (name, config, ok) in cases {
            assert_eq!(
                config.validate().is_ok(),
                *ok,
                "{name}: {:?}",
                config.validate()
            );
        }
    }

    #[test]
    fn accept_any_credentials_only_in_dev() {
        assert_eq!(ServerConfig::data_dir("/x").auth_mode(), AuthMode::SigV4);
        assert_eq!(
            ServerConfig::dev(DevOptions::default()).auth_mode(),
            AuthMode::SigV4
        );
        let options = DevOptions {
            accept_any_credentials: true,
            ..DevOptions::default()
        };
        assert_eq!(
            ServerConfig::dev(options).auth_mode(),
            AuthMode::AcceptAnyCredentials
        );
    }

    const ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Vec<RotationFunctionConfig>, String> {
        RotationFunctionConfig::parse_list(text, &no_env)
    }

    #[test]
    fn rotation_function_files_name_the_wrong_entry() {
        let cases: &[(&str, &str)] = &[
            ("{", "not valid JSON"),
            ("{}", "must hold a JSON list"),
            ("[1]", "entry 1: a rotation function is a JSON object"),
            (
                r#"[{"arn": "x", "kind": "lambda"}]"#,
                "entry 1 (x): unknown kind \"lambda\"",
            ),
            (r#"[{"kind": "webhook"}]"#, "entry 1: \"arn\" is missing"),
            (
                r#"[{"arn": "arn:aws:lambda:us-east-1:111111111111:function:f", "kind": "builtin", "engine": "postgres"}]"#,
                "entry 1 (arn:aws:lambda:us-east-1:111111111111:function:f): \"strategy\" is missing",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "webhook", "url": "https://x", "urll": 1}]"#,
                "unknown field \"urll\"",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "webhook", "url": "https://x", "program": "/x"}]"#,
                "\"program\" does not apply to a webhook function",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "webhook", "url": "https://x", "timeout_secs": 0}]"#,
                "from 1 to 900",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "webhook", "url": "https://x", "signing_secret": "s3cr3t"}]"#,
                "must not hold the signing secret",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "webhook", "url": "https://x", "signing_secret_env": "NOPE_VAR"}]"#,
                "NOPE_VAR (signing_secret_env) is not set",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "executable", "program": "/x", "args": [1]}]"#,
                "\"args\" must be a list of strings",
            ),
            (
                r#"[{"arn": "a:b:c:d:111111111111:f", "kind": "executable", "program": "/x"},
                    {"arn": "a:b:c:d:111111111111:f", "kind": "executable", "program": "/y"}]"#,
                "entry 2 (a:b:c:d:111111111111:f): entry 1 registers the same ARN",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn rotation_function_files_parse() {
        let env = |name: &str| (name == "HOOK").then(|| "hook-secret".to_owned());
        let text = format!(
            r#"[
                {{"arn": "{ARN}", "kind": "builtin", "engine": "postgres", "strategy": "alternating-users"}},
                {{"arn": "{ARN}2", "account": "111111111111", "kind": "webhook", "url": "https://h/r",
                  "signing_secret_env": "HOOK", "timeout_secs": 60}},
                {{"arn": "{ARN}3", "kind": "executable", "program": "/bin/r", "args": ["-v"]}}
            ]"#
        );
        let functions = RotationFunctionConfig::parse_list(&text, &env).unwrap();
        assert_eq!(functions.len(), 3);
        assert!(functions.iter().all(|f| f.account_id == "111111111111"));
        assert!(matches!(functions[0].spec, FunctionSpec::Builtin { .. }));
        match &functions[1].spec {
            FunctionSpec::Webhook {
                url,
                signing_secret,
                timeout_secs,
            } => {
                assert_eq!(url, "https://h/r");
                assert_eq!(
                    signing_secret.as_ref().and_then(SecretBytes::as_str),
                    Some("hook-secret")
                );
                assert_eq!(*timeout_secs, 60);
            }
            other => panic!("{other:?}"),
        }
        match &functions[2].spec {
            FunctionSpec::Executable {
                program,
                args,
                timeout_secs,
            } => {
                assert_eq!(program, "/bin/r");
                assert_eq!(args, &["-v"]);
                assert_eq!(*timeout_secs, DEFAULT_FUNCTION_TIMEOUT_SECS);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("[]").unwrap().is_empty());
    }

    #[test]
    fn register_requests_carry_the_secret_inline() {
        let request = format!(
            r#"{{"arn": "{ARN}", "kind": "webhook", "url": "http://127.0.0.1:9/x", "signing_secret": "s3cr3t"}}"#
        );
        let function = RotationFunctionConfig::from_request(&request).unwrap();
        assert_eq!(function.account_id, "111111111111");
        assert!(!format!("{function:?}").contains("s3cr3t"));
        let request = format!(
            r#"{{"arn": "{ARN}", "kind": "webhook", "url": "http://x", "signing_secret_env": "V"}}"#
        );
        let err = RotationFunctionConfig::from_request(&request).unwrap_err();
        assert!(
            err.contains("belongs in a --rotation-functions file"),
            "{err}"
        );
        let err = RotationFunctionConfig::from_request("{\"arn\": \"s3cr3t").unwrap_err();
        assert!(
            err.contains("not valid JSON") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = RotationFunctionConfig::from_request(&format!(
            r#"{{"arn": "{ARN}", "kind": "builtin", "engine": "oracle", "strategy": "single-user"}}"#
        ))
        .unwrap_err();
        assert!(err.contains("unknown engine \"oracle\""), "{err}");
    }

    #[test]
    fn defaults() {
        assert_eq!(
            ServerConfig::data_dir("/x").listen.to_string(),
            "127.0.0.1:8443"
        );
        assert_eq!(
            ServerConfig::dev(DevOptions::default()).listen.to_string(),
            "127.0.0.1:4566"
        );
        assert_eq!(DevOptions::default().account_id, "000000000000");
    }
}
