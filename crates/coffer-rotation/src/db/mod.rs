//! The built-in database rotators: what AWS's RDS rotation Lambda templates do to a database
//! (`SecretsManagerRDSPostgreSQLRotationSingleUser`/`…MultiUser`,
//! `SecretsManagerRDSMySQLRotationSingleUser`/`…MultiUser`, `SecretsManagerRDSMariaDBRotation…`),
//! for PostgreSQL and MySQL/MariaDB, without Lambda.
//!
//! The rotation engine in `coffer-core` runs the four steps. It owns `createSecret` (it
//! generates the password and writes the pending version, whose JSON [`pending_value`] derives
//! from the current one) and `finishSecret` (staging labels). This module does what touches the
//! database:
//!
//! - [`set_secret`]: make the pending credentials valid in the database.
//!   - [`Strategy::SingleUser`]: the user changes its own password. If the pending credentials
//!     already log in, nothing is done (a retried step is harmless); otherwise the user logs in
//!     with the current credentials, or failing that the previous ones, and sets the pending
//!     password.
//!   - [`Strategy::AlternatingUsers`]: a superuser (the secret named by `masterarn`, whose
//!     credentials the engine passes in) sets the password of the pending user, which alternates
//!     between `user` and `user_clone`; the clone is created on first use with the privileges of
//!     the original (PostgreSQL: membership in the original role; MySQL/MariaDB: the original's
//!     `SHOW GRANTS` replayed for every host the original account has, plus its TLS
//!     requirements). The current user keeps working with its password until the next rotation.
//! - [`test_secret`]: log in with the pending credentials and run a trivial query.
//!
//! The secret value is AWS's JSON: `engine` (`postgres`, `mysql`, `mariadb`, and the aliases
//! `aurora-postgresql`, `aurora-mysql`, `aurora`), `host`, `port`, `username`, `password`,
//! `dbname` (optional), `masterarn` (alternating users), `ssl` (optional, as in the templates:
//! `true` requires TLS with a verified certificate, `false` disables it, absent tries TLS and
//! falls back to a plain connection when TLS is not possible); other keys are kept untouched.
//!
//! Passwords: PostgreSQL receives a SCRAM-SHA-256 verifier computed here, never the plaintext;
//! MySQL/MariaDB have no such form for every plugin, so the password travels as a quoted literal
//! (quoting independent of the server's `NO_BACKSLASH_ESCAPES`, on a utf8mb4 connection). No
//! error message carries a password; a server message that might quote a statement holding one
//! is withheld. Every connection attempt is bounded by [`CONNECT_TIMEOUT`], every
//! administrative step by [`STATEMENT_TIMEOUT`].

mod mysql;
mod postgres;
mod secret;
mod tls;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use coffer_crypto::SecretBytes;

pub use secret::{alternate_username, parse_master_secret, parse_secret, pending_value};

/// How long one connection attempt (TCP, TLS and login) may take. The AWS templates use 5 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the statements of one step (checks, role or user changes) may take together.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The database engine family named by the secret's `engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// `postgres`, `aurora-postgresql`.
    Postgres,
    /// `mysql`, `mariadb`, `aurora-mysql`, `aurora` (the rotator tells MySQL from MariaDB by
    /// the server's version, not by this name).
    MySql,
}

impl Engine {
    /// The family for an `engine` value of a secret, or `None` when it is not one the built-in
    /// rotators handle.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "postgres" | "aurora-postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The port used when the secret names none.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::MySql => 3306,
        }
    }

    /// The name for messages.
    #[must_use]
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
        }
    }
}

/// The rotation strategy: which AWS template the rotator behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The user changes its own password (`…RotationSingleUser`).
    SingleUser,
    /// A superuser sets the password of `user` or `user_clone` in turn (`…RotationMultiUser`).
    AlternatingUsers,
}

/// TLS to the database, from the secret's `ssl` key (the templates' `get_ssl_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// `"ssl": false`: plain TCP.
    Disabled,
    /// No `ssl` key (or an unrecognised value): TLS with a verified certificate when it can be
    /// established, else plain TCP. A server that refuses the credentials over TLS is not asked
    /// again in plain text.
    Preferred,
    /// `"ssl": true`: TLS with a certificate verified against the public web PKI roots and the
    /// system bundle (e.g. `/etc/ssl/certs/ca-certificates.crt`), or fail.
    Required,
}

/// The connection facts and credentials of one secret version. `Debug` never shows the
/// password.
#[derive(Clone)]
pub struct DbSecret {
    engine: Engine,
    engine_name: String,
    host: String,
    port: u16,
    username: String,
    password: SecretBytes,
    dbname: Option<String>,
    master_arn: Option<String>,
    tls: TlsMode,
}

impl DbSecret {
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The `engine` value as the secret spells it.
    #[must_use]
    pub fn engine_name(&self) -> &str {
        &self.engine_name
    }

    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, or the engine's default when the secret names none.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    #[must_use]
    pub fn username(&self) -> &str {
        &self.username
    }

    #[must_use]
    pub fn password(&self) -> &SecretBytes {
        &self.password
    }

    /// The database to connect to (PostgreSQL defaults to `postgres`; MySQL to none).
    #[must_use]
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The ARN of the superuser secret (alternating users), as written in `masterarn`.
    #[must_use]
    pub fn master_arn(&self) -> Option<&str> {
        self.master_arn.as_deref()
    }

    #[must_use]
    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// `host:port` for messages.
    fn endpoint(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn password_str(&self) -> &str {
        // `parse_secret` only builds a `DbSecret` from a JSON string, which is UTF-8.
        self.password.as_str().unwrap_or_default()
    }

    /// Whether `other` names the same server (host and port).
    fn same_endpoint(&self, other: &Self) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine_name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .field("master_arn", &self.master_arn)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// What went wrong, in words for the operator: what failed, on which server and as which user,
/// and what to check. Never carries a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    kind: DbErrorKind,
    message: String,
}

/// The class of a [`DbError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The secret value cannot be used by a built-in rotator (not JSON, a missing or mistyped
    /// key, an unknown engine, a name too long to clone).
    InvalidSecret,
    /// The secret versions do not describe one rotation the rotator may perform (another user,
    /// another server, a master secret for another server).
    Refused,
    /// No session could be established for a reason other than refused credentials: connection
    /// refused, name resolution, timeout, TLS, an unknown database, too many connections.
    Connect,
    /// The server refused credentials that had to work.
    LoginRefused,
    /// A statement failed after logging in.
    Statement,
}

impl DbError {
    #[must_use]
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }

    /// The message, as `Display` prints it.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid_secret(what: impl fmt::Display) -> Self {
        Self {
            kind: DbErrorKind::InvalidSecret,
            message: format!("the secret value is not a usable database secret: {what}"),
        }
    }

    pub(crate) fn refused(what: impl fmt::Display) -> Self {
        Self {
            kind: DbErrorKind::Refused,
            message: format!("refusing to rotate: {what}"),
        }
    }
}

/// How a login attempt ended, when it did not fail outright.
enum Login<C> {
    Ok(C),
    /// The server answered and refused these credentials (wrong password, unknown user).
    Refused(String),
}

/// A logged-in session on either engine.
enum Conn {
    Postgres(postgres::Conn),
    MySql(mysql::Conn),
}

impl Conn {
    async fn close(self) {
        match self {
            Self::Postgres(c) => c.close().await,
            Self::MySql(c) => c.close().await,
        }
    }
}

/// Logs in with `creds` at `endpoint`'s host, port, database and TLS mode.
async fn login(endpoint: &DbSecret, creds: &DbSecret) -> Result<Login<Conn>, DbError> {
    Ok(match endpoint.engine {
        Engine::Postgres => match postgres::login(endpoint, creds).await? {
            Login::Ok(c) => Login::Ok(Conn::Postgres(c)),
            Login::Refused(r) => Login::Refused(r),
        },
        Engine::MySql => match mysql::login(endpoint, creds).await? {
            Login::Ok(c) => Login::Ok(Conn::MySql(c)),
            Login::Refused(r) => Login::Refused(r),
        },
    })
}

fn refused(s: &DbSecret, credentials: &str, reason: String, hint: String) -> DbError {
    DbError {
        kind: DbErrorKind::LoginRefused,
        message: format!(
            "the {} server at {} refused the {credentials} of user '{}': {reason}. {hint}",
            s.engine.display_name(),
            s.endpoint(),
            s.username
        ),
    }
}

/// setSecret: makes the pending credentials valid in the database.
///
/// `previous` (single user) is the `AWSPREVIOUS` version, tried when the current credentials no
/// longer log in (an interrupted earlier rotation); `master` (alternating users) is the
/// superuser secret named by `masterarn`, parsed with [`parse_master_secret`].
///
/// # Errors
/// [`DbError`] when the secrets disagree, the server is unreachable, no usable credentials
/// log in, or a statement fails.
pub async fn set_secret(
    strategy: Strategy,
    current: &DbSecret,
    pending: &DbSecret,
    previous: Option<&DbSecret>,
    master: Option<&DbSecret>,
) -> Result<(), DbError> {
    if current.engine != pending.engine {
        return Err(DbError::refused(format_args!(
            "the pending version names engine '{}' but the current version '{}'",
            pending.engine_name, current.engine_name
        )));
    }
    match strategy {
        Strategy::SingleUser => single_user(current, pending, previous).await,
        Strategy::AlternatingUsers => {
            let Some(master) = master else {
                return Err(DbError::invalid_secret(
                    "alternating-users rotation needs the superuser secret named by 'masterarn'",
                ));
            };
            alternating(current, pending, master).await
        }
    }
}

/// Whether the pending credentials already log in (a retried step, or a crash after the
/// change): then there is nothing to do, as in the templates.
async fn already_set(pending: &DbSecret) -> Result<bool, DbError> {
    match login(pending, pending).await? {
        Login::Ok(conn) => {
            conn.close().await;
            tracing::info!(user = %pending.username, endpoint = %pending.endpoint(),
                "setSecret: the pending password already logs in");
            Ok(true)
        }
        Login::Refused(_) => Ok(false),
    }
}

async fn single_user(
    current: &DbSecret,
    pending: &DbSecret,
    previous: Option<&DbSecret>,
) -> Result<(), DbError> {
    if current.username != pending.username {
        return Err(DbError::refused(format_args!(
            "the pending version is for user '{}' but the current version for user '{}' (single-user rotation changes one user's password)",
            pending.username, current.username
        )));
    }
    if !current.same_endpoint(pending) {
        return Err(DbError::refused(format_args!(
            "the pending version names server {} but the current version {}",
            pending.endpoint(),
            current.endpoint()
        )));
    }
    if already_set(pending).await? {
        return Ok(());
    }
    let mut conn = match login(current, current).await? {
        Login::Ok(conn) => conn,
        Login::Refused(current_reason) => {
            let previous = previous.filter(|p| p.engine == pending.engine);
            let Some(previous) = previous else {
                return Err(refused(
                    current,
                    "pending and current credentials",
                    current_reason,
                    format!(
                        "Neither password logs in and there is no previous version to try; set the password of '{}' to the AWSCURRENT value by hand, then rotate again",
                        current.username
                    ),
                ));
            };
            if previous.username != pending.username || !previous.same_endpoint(pending) {
                return Err(DbError::refused(format_args!(
                    "the current credentials do not log in, and the previous version is for user '{}' at {}, not '{}' at {}",
                    previous.username,
                    previous.endpoint(),
                    pending.username,
                    pending.endpoint()
                )));
            }
            // The templates try the previous password with the current TLS settings.
            match login(current, previous).await? {
                Login::Ok(conn) => conn,
                Login::Refused(reason) => {
                    return Err(refused(
                        current,
                        "pending, current and previous credentials",
                        reason,
                        format!(
                            "None of the three passwords logs in; set the password of '{}' to the AWSCURRENT value by hand, then rotate again",
                            current.username
                        ),
                    ));
                }
            }
        }
    };
    let result = match &mut conn {
        Conn::Postgres(c) => postgres::set_own_password(c, pending).await,
        Conn::MySql(c) => mysql::set_own_password(c, pending).await,
    };
    conn.close().await;
    result?;
    tracing::info!(user = %pending.username, endpoint = %pending.endpoint(),
        "setSecret: set the pending password (single user)");
    Ok(())
}

async fn alternating(
    current: &DbSecret,
    pending: &DbSecret,
    master: &DbSecret,
) -> Result<(), DbError> {
    let expected = alternate_username(current.engine, &current.username)?;
    if pending.username != expected {
        return Err(DbError::refused(format_args!(
            "the pending version is for user '{}', but alternating from '{}' must set '{}'",
            pending.username, current.username, expected
        )));
    }
    if !current.same_endpoint(pending) {
        return Err(DbError::refused(format_args!(
            "the pending version names server {} but the current version {}",
            pending.endpoint(),
            current.endpoint()
        )));
    }
    if master.engine != current.engine {
        return Err(DbError::refused(format_args!(
            "the master secret names engine '{}' but the user secret '{}'",
            master.engine_name, current.engine_name
        )));
    }
    if !master.same_endpoint(current) {
        return Err(DbError::refused(format_args!(
            "the master secret names server {} but the user secret {}; the master must administer the same server",
            master.endpoint(),
            current.endpoint()
        )));
    }
    if already_set(pending).await? {
        return Ok(());
    }
    // As the templates do: the current credentials must work, so that the master is never
    // used on behalf of a secret that does not hold valid credentials (confused deputy).
    match login(current, current).await? {
        Login::Ok(conn) => conn.close().await,
        Login::Refused(reason) => {
            return Err(refused(
                current,
                "current credentials",
                reason,
                "The rotator only acts for a secret whose current version logs in; fix the AWSCURRENT version first".into(),
            ));
        }
    }
    let mut conn = match login(master, master).await? {
        Login::Ok(conn) => conn,
        Login::Refused(reason) => {
            return Err(refused(
                master,
                "master credentials",
                reason,
                "Check the current version of the secret named by 'masterarn'".into(),
            ));
        }
    };
    let result = match &mut conn {
        Conn::Postgres(c) => postgres::set_user_password(c, master, current, pending).await,
        Conn::MySql(c) => mysql::set_user_password(c, master, current, pending).await,
    };
    conn.close().await;
    result?;
    tracing::info!(user = %pending.username, endpoint = %pending.endpoint(), master = %master.username,
        "setSecret: set the pending password (alternating users)");
    Ok(())
}

/// testSecret: logs in with the pending credentials and runs a trivial query.
///
/// # Errors
/// [`DbError`] when the server is unreachable, refuses the credentials or the query fails.
pub async fn test_secret(pending: &DbSecret) -> Result<(), DbError> {
    let mut conn = match login(pending, pending).await? {
        Login::Ok(conn) => conn,
        Login::Refused(reason) => {
            return Err(refused(
                pending,
                "pending credentials",
                reason,
                "setSecret should have set this password; run the rotation again".into(),
            ));
        }
    };
    let result = match &mut conn {
        Conn::Postgres(c) => postgres::ping(c, pending).await,
        Conn::MySql(c) => mysql::ping(c, pending).await,
    };
    conn.close().await;
    result
}

/// Bounds `fut` by `limit`; on expiry, the error `on_timeout` builds.
async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, DbError>>,
    on_timeout: impl FnOnce() -> DbError,
) -> Result<T, DbError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(on_timeout()),
    }
}

fn connect_error(s: &DbSecret, creds: &DbSecret, reason: String) -> DbError {
    let tls_hint = if s.tls == TlsMode::Required {
        " (with \"ssl\": true the server must offer TLS with a certificate for this host name issued by a public CA or one in the system CA bundle)"
    } else {
        ""
    };
    DbError {
        kind: DbErrorKind::Connect,
        message: format!(
            "could not connect to the {} server at {} as user '{}': {reason}. Check that the server is running and reachable from coffer, and the host, port, dbname and ssl settings of the secret{tls_hint}",
            s.engine.display_name(),
            s.endpoint(),
            creds.username
        ),
    }
}

fn statement_error(
    s: &DbSecret,
    action: impl fmt::Display,
    reason: impl fmt::Display,
    hint: impl fmt::Display,
) -> DbError {
    DbError {
        kind: DbErrorKind::Statement,
        message: format!(
            "{action} failed on the {} server at {} (logged in as '{}'): {reason}. {hint}",
            s.engine.display_name(),
            s.endpoint(),
            s.username
        ),
    }
}

/// An error with its causes, as "outer: inner: innermost" (a cause already in the text is not
/// repeated).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Test hooks: the quoting the MySQL rotator uses, exposed so that integration tests can check
/// it against a real server's parser. Not part of the stable API.
#[doc(hidden)]
pub mod internals {
    pub use super::mysql::quote_string as mysql_quote_string;
}
