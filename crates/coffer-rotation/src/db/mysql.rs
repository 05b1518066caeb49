//! MySQL and MariaDB over mysql_async. Passwords travel as string literals (no form the server
//! hashes client-side works for every plugin and version), quoted by [`quote_string`] for the
//! session's actual `NO_BACKSLASH_ESCAPES` mode on a utf8mb4 connection; user and host names are
//! quoted the same way. A server message about a statement that holds a password is only
//! shown for error codes known not to quote the statement.

use mysql_async::prelude::Queryable;
use mysql_async::{DriverError, IoError, OptsBuilder, SslOpts};
use zeroize::Zeroizing;

use super::tls::system_roots;
use super::{
    CONNECT_TIMEOUT, DbError, DbSecret, Login, STATEMENT_TIMEOUT, TlsMode, bounded, connect_error,
    statement_error, with_causes,
};

/// Server errors meaning "these credentials do not log in from here": access denied (1045),
/// access denied without password (1698), host not allowed to connect (1130).
const REFUSED_CODES: &[u16] = &[1045, 1698, 1130];

/// Server errors whose message names accounts or privileges but never quotes the statement,
/// so they may be shown for a statement holding a password: access denied (1044, 1045, 1142,
/// 1227), operation failed for an account (1396), no such account (1133), password policy
/// (1819), name too long (1470), no such grant (1141).
const SAFE_MESSAGE_CODES: &[u16] = &[1044, 1045, 1133, 1141, 1142, 1227, 1396, 1470, 1819];

pub(super) struct Conn(mysql_async::Conn);

impl Conn {
    pub(super) async fn close(self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.0.disconnect()).await;
    }
}

/// Quotes `s` as a MySQL string literal: `'` doubled and, unless the session has
/// `NO_BACKSLASH_ESCAPES`, `\` doubled (and NUL written `\0`, though secrets with NUL are
/// refused earlier). Correct for any text on a utf8mb4 connection, where no multi-byte character
/// contains the byte of `'` or `\`.
#[must_use]
pub fn quote_string(s: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !no_backslash_escapes => out.push_str("\\\\"),
            '\0' if !no_backslash_escapes => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// How one attempt failed.
enum Failure {
    Refused(String),
    Final(String),
    /// TLS could not be established: a plain connection may work.
    Tls(String),
}

pub(super) async fn login(endpoint: &DbSecret, creds: &DbSecret) -> Result<Login<Conn>, DbError> {
    let outcome = match endpoint.tls {
        TlsMode::Disabled => attempt(endpoint, creds, None).await,
        TlsMode::Required => attempt(endpoint, creds, Some(ssl_opts())).await,
        TlsMode::Preferred => match attempt(endpoint, creds, Some(ssl_opts())).await {
            Err(Failure::Tls(reason)) => {
                tracing::debug!(endpoint = %endpoint.endpoint(), %reason,
                    "TLS connection failed; trying without TLS as the secret has no 'ssl' key");
                attempt(endpoint, creds, None).await
            }
            other => other,
        },
    };
    match outcome {
        Ok(conn) => Ok(Login::Ok(conn)),
        Err(Failure::Refused(reason)) => Ok(Login::Refused(reason)),
        Err(Failure::Final(reason) | Failure::Tls(reason)) => {
            Err(connect_error(endpoint, creds, reason))
        }
    }
}

fn ssl_opts() -> SslOpts {
    // mysql_async adds the web PKI roots itself.
    SslOpts::default().with_root_certs(
        system_roots()
            .into_iter()
            .map(|c| c.to_vec().into())
            .collect(),
    )
}

async fn attempt(
    endpoint: &DbSecret,
    creds: &DbSecret,
    ssl: Option<SslOpts>,
) -> Result<Conn, Failure> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(endpoint.host.clone())
        .tcp_port(endpoint.port)
        .user(Some(creds.username.clone()))
        .pass(Some(creds.password_str().to_owned()))
        .db_name(endpoint.dbname.clone())
        // Stay on TCP: on a loopback address mysql_async would otherwise switch to the Unix
        // socket, where the server matches another account ('user'@'localhost').
        .prefer_socket(false)
        .ssl_opts(ssl);
    match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts)).await {
        Err(_) => Err(Failure::Final(format!(
            "no answer within {} s (connection, TLS handshake and login)",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok(conn)) => Ok(Conn(conn)),
        Ok(Err(e)) => Err(classify(&e)),
    }
}

fn classify(e: &mysql_async::Error) -> Failure {
    match e {
        mysql_async::Error::Server(se) => {
            let reason = format!("{} (error {})", se.message, se.code);
            if REFUSED_CODES.contains(&se.code) {
                Failure::Refused(reason)
            } else {
                Failure::Final(reason)
            }
        }
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            Failure::Tls("the server does not offer TLS".into())
        }
        mysql_async::Error::Io(IoError::Tls(t)) => {
            Failure::Tls(format!("TLS failed: {}", with_causes(t)))
        }
        other => Failure::Final(describe(other)),
    }
}

/// mysql_async's messages without its repeated "Input/output error:" prefixes.
fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Io(IoError::Io(io)) => with_causes(io),
        mysql_async::Error::Io(IoError::Tls(t)) => format!("TLS failed: {}", with_causes(t)),
        mysql_async::Error::Driver(d) => d.to_string(),
        other => other.to_string(),
    }
}

/// The reason of a failed statement that held no password.
fn reason(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(se) => {
            format!("{} (error {}, SQLSTATE {})", se.message, se.code, se.state)
        }
        other => describe(other),
    }
}

/// The reason of a failed statement that held a password: the server's message only when its
/// code is known not to quote the statement.
fn reason_withheld(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(se) if SAFE_MESSAGE_CODES.contains(&se.code) => {
            format!("{} (error {}, SQLSTATE {})", se.message, se.code, se.state)
        }
        mysql_async::Error::Server(se) => format!(
            "error {} (SQLSTATE {}); the server's message is not shown because it may quote the statement, which holds a password",
            se.code, se.state
        ),
        other => describe(other),
    }
}

/// The facts of the session that quoting and syntax depend on.
struct Session {
    no_backslash_escapes: bool,
    mariadb: bool,
    major: u32,
}

impl Session {
    fn quote(&self, s: &str) -> String {
        quote_string(s, self.no_backslash_escapes)
    }

    fn account(&self, user: &str, host: &str) -> String {
        format!("{}@{}", self.quote(user), self.quote(host))
    }
}

async fn session(conn: &mut Conn, as_: &DbSecret) -> Result<Session, DbError> {
    let fail = |e: mysql_async::Error| {
        statement_error(
            as_,
            "reading the session's SQL mode and the server version",
            reason(&e),
            "Check the server log",
        )
    };
    // The handshake already asks for utf8mb4; say so explicitly, since quoting relies on it.
    conn.0.query_drop("SET NAMES utf8mb4").await.map_err(fail)?;
    let row: Option<(String, String)> = conn
        .0
        .query_first("SELECT @@SESSION.sql_mode, VERSION()")
        .await
        .map_err(fail)?;
    let (sql_mode, version) = row.unwrap_or_default();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Ok(Session {
        no_backslash_escapes: sql_mode
            .split(',')
            .any(|m| m.eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES")),
        mariadb: version.to_ascii_lowercase().contains("mariadb"),
        major,
    })
}

/// Single user: the logged-in account sets its own password with `SET PASSWORD`, which every
/// account may do for itself (MariaDB refuses `ALTER USER CURRENT_USER()` without the CREATE
/// USER privilege). As the template does: `PASSWORD('…')` for MariaDB and MySQL 5, the plain
/// literal for MySQL 8 and later (where `PASSWORD()` no longer exists).
pub(super) async fn set_own_password(conn: &mut Conn, pending: &DbSecret) -> Result<(), DbError> {
    let action = format!("changing the password of user '{}'", pending.username);
    bounded(
        STATEMENT_TIMEOUT,
        async {
            let s = session(conn, pending).await?;
            let literal = Zeroizing::new(s.quote(pending.password_str()));
            let sql = Zeroizing::new(if s.mariadb || s.major < 8 {
                format!("SET PASSWORD = PASSWORD({})", literal.as_str())
            } else {
                format!("SET PASSWORD = {}", literal.as_str())
            });
            conn.0.query_drop(sql.as_str()).await.map_err(|e| {
                statement_error(
                    pending,
                    action.clone(),
                    reason_withheld(&e),
                    "Check the server's password policy (validate_password, simple_password_check) against the password settings of the rotation",
                )
            })
        },
        || statement_error(pending, action.clone(), "timed out", "Check the server load"),
    )
    .await
}

/// The hosts of `user`'s accounts.
async fn hosts(conn: &mut Conn, master: &DbSecret, user: &str) -> Result<Vec<String>, DbError> {
    let mut hosts: Vec<String> = conn
        .0
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
        .await
        .map_err(|e| {
            statement_error(
                master,
                format!("looking up the accounts of user '{user}'"),
                reason(&e),
                "Check that the master may read mysql.user",
            )
        })?;
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// Alternating users, logged in as the master. For every host `h` of the current user's
/// accounts: creates `'pending'@h` if missing, replays the grants of `'current'@h` (`SHOW
/// GRANTS`, the grantee replaced) and copies its TLS requirements; then sets the pending
/// password on every account of the pending user. A new account first gets a random password
/// nobody knows, so the pending password logs in only once the grants are in place (which is
/// what makes "the pending password logs in" mean "done" when the step is retried).
pub(super) async fn set_user_password(
    conn: &mut Conn,
    master: &DbSecret,
    current: &DbSecret,
    pending: &DbSecret,
) -> Result<(), DbError> {
    let p = pending.username.as_str();
    let c = current.username.as_str();
    bounded(
        STATEMENT_TIMEOUT,
        async {
            let s = session(conn, master).await?;
            let current_hosts = hosts(conn, master, c).await?;
            if current_hosts.is_empty() {
                return Err(statement_error(
                    master,
                    format!("looking up the accounts of user '{c}'"),
                    format!("the server has no account named '{c}'"),
                    "The current user must exist for its privileges to be copied",
                ));
            }
            let mut pending_hosts = hosts(conn, master, p).await?;
            for h in &current_hosts {
                if !pending_hosts.contains(h) {
                    create_account(conn, &s, master, p, h).await?;
                    pending_hosts.push(h.clone());
                }
                copy_grants(conn, &s, master, c, p, h).await?;
                copy_tls_requirements(conn, &s, master, c, p, h).await?;
            }
            let literal = Zeroizing::new(s.quote(pending.password_str()));
            for h in &pending_hosts {
                let sql = Zeroizing::new(format!(
                    "ALTER USER {} IDENTIFIED BY {}",
                    s.account(p, h),
                    literal.as_str()
                ));
                conn.0.query_drop(sql.as_str()).await.map_err(|e| {
                    statement_error(
                        master,
                        format!("changing the password of '{p}'@'{h}'"),
                        reason_withheld(&e),
                        "Check that the master has the CREATE USER privilege, and the server's password policy",
                    )
                })?;
            }
            Ok(())
        },
        || {
            statement_error(
                master,
                format!("setting the password of user '{p}'"),
                "timed out",
                "Check for long-running statements holding the privilege tables",
            )
        },
    )
    .await
}

async fn create_account(
    conn: &mut Conn,
    s: &Session,
    master: &DbSecret,
    user: &str,
    host: &str,
) -> Result<(), DbError> {
    let mut random = [0u8; 24];
    coffer_crypto::fill_random(&mut random).map_err(|e| {
        statement_error(
            master,
            format!("creating '{user}'@'{host}'"),
            e.to_string(),
            "",
        )
    })?;
    // Letters of both cases, a digit and a symbol, for password policy plugins.
    let throwaway = Zeroizing::new(format!("{}Aa1#", coffer_crypto::hex(&random)));
    let sql = Zeroizing::new(format!(
        "CREATE USER {} IDENTIFIED BY {}",
        s.account(user, host),
        s.quote(&throwaway)
    ));
    conn.0.query_drop(sql.as_str()).await.map_err(|e| {
        statement_error(
            master,
            format!("creating '{user}'@'{host}'"),
            reason_withheld(&e),
            "Check that the master has the CREATE USER privilege",
        )
    })?;
    tracing::info!(user = %user, host = %host, "created the alternate account");
    Ok(())
}

async fn copy_grants(
    conn: &mut Conn,
    s: &Session,
    master: &DbSecret,
    from: &str,
    to: &str,
    host: &str,
) -> Result<(), DbError> {
    let lines: Vec<String> = conn
        .0
        .query(format!("SHOW GRANTS FOR {}", s.account(from, host)))
        .await
        .map_err(|e| {
            statement_error(
                master,
                format!("reading the grants of '{from}'@'{host}'"),
                reason(&e),
                "Check that the master may read the mysql schema (SHOW GRANTS for other users)",
            )
        })?;
    let new_grantee = s.account(to, host);
    for (i, line) in lines.iter().enumerate() {
        let Some(sql) = rewrite_grant(line, from, host, &new_grantee) else {
            if line.starts_with("GRANT ") {
                // Never replay part of the privileges silently. The line is not quoted: it may
                // hold a password hash.
                return Err(statement_error(
                    master,
                    format!("copying the grants of '{from}'@'{host}' to '{to}'@'{host}'"),
                    format!(
                        "line {} of SHOW GRANTS does not name the grantee in a form the rotator knows",
                        i + 1
                    ),
                    "Grant the privileges to the clone by hand, then rotate again",
                ));
            }
            tracing::warn!(user = %from, host = %host, line = i + 1,
                "skipped a SHOW GRANTS line that is neither GRANT, REVOKE nor SET DEFAULT ROLE");
            continue;
        };
        conn.0.query_drop(sql.as_str()).await.map_err(|e| {
            statement_error(
                master,
                format!("copying the grants of '{from}'@'{host}' to '{to}'@'{host}'"),
                reason(&e),
                "Check that the master holds these privileges WITH GRANT OPTION, and the roles granted to the user WITH ADMIN OPTION",
            )
        })?;
    }
    Ok(())
}

/// A `SHOW GRANTS` line for `user@host` rewritten for `new_grantee`: `GRANT … TO <grantee>`
/// (keeping `WITH GRANT OPTION`/`WITH ADMIN OPTION`, dropping MariaDB's `IDENTIFIED BY
/// PASSWORD`, `REQUIRE` and resource limits that follow the grantee), `REVOKE … FROM
/// <grantee>` (MySQL partial revokes) and `SET DEFAULT ROLE … FOR <grantee>` (MariaDB). `None`
/// for any other line or when the grantee is not found.
pub(super) fn rewrite_grant(
    line: &str,
    user: &str,
    host: &str,
    new_grantee: &str,
) -> Option<String> {
    let (keyword, keep_options) = if line.starts_with("GRANT ") {
        (" TO ", true)
    } else if line.starts_with("REVOKE ") {
        (" FROM ", false)
    } else if line.starts_with("SET DEFAULT ROLE ") {
        (" FOR ", false)
    } else {
        return None;
    };
    for grantee in grantee_forms(user, host) {
        let needle = format!("{keyword}{grantee}");
        if let Some(at) = line.rfind(&needle) {
            let rest = &line[at + needle.len()..];
            if !(rest.is_empty() || rest.starts_with(' ')) {
                continue;
            }
            let mut out = format!("{}{keyword}{new_grantee}", &line[..at]);
            if keep_options {
                let bare = unquoted(rest);
                if bare.contains(" WITH GRANT OPTION") {
                    out.push_str(" WITH GRANT OPTION");
                } else if bare.contains(" WITH ADMIN OPTION") {
                    out.push_str(" WITH ADMIN OPTION");
                }
            }
            return Some(out);
        }
    }
    None
}

/// The ways servers print an account in `SHOW GRANTS`: backquoted with doubled backquotes
/// (MariaDB, MySQL 8), single-quoted with doubled or backslashed quotes (MySQL 5.7; MariaDB's
/// PROXY lines).
fn grantee_forms(user: &str, host: &str) -> [String; 3] {
    let bq = |s: &str| format!("`{}`", s.replace('`', "``"));
    let sq = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let sb = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    [
        format!("{}@{}", bq(user), bq(host)),
        format!("{}@{}", sq(user), sq(host)),
        format!("{}@{}", sb(user), sb(host)),
    ]
}

/// `s` with the contents of quoted strings and identifiers blanked, so that keywords inside
/// names are not mistaken for clauses.
fn unquoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => out.push(' '),
            None => {
                if matches!(c, '\'' | '"' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

async fn copy_tls_requirements(
    conn: &mut Conn,
    s: &Session,
    master: &DbSecret,
    from: &str,
    to: &str,
    host: &str,
) -> Result<(), DbError> {
    let action = || format!("copying the TLS requirements of '{from}'@'{host}' to '{to}'@'{host}'");
    type Tls = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
    );
    let row: Option<Tls> = conn
        .0
        .exec_first(
            "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user WHERE User = ? AND Host = ?",
            (from, host),
        )
        .await
        .map_err(|e| statement_error(master, action(), reason(&e), "Check that the master may read mysql.user"))?;
    let text = |v: Option<Vec<u8>>| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned();
    let (ssl_type, cipher, issuer, subject) = match row {
        Some((t, c, i, sub)) => (text(t), text(c), text(i), text(sub)),
        None => return Ok(()),
    };
    let require = match ssl_type.to_ascii_uppercase().as_str() {
        "" => "NONE".to_owned(),
        "ANY" => "SSL".to_owned(),
        "X509" => "X509".to_owned(),
        _ => {
            let parts: Vec<String> = [
                ("CIPHER", &cipher),
                ("ISSUER", &issuer),
                ("SUBJECT", &subject),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {}", s.quote(v)))
            .collect();
            if parts.is_empty() {
                "SSL".to_owned()
            } else {
                parts.join(" AND ")
            }
        }
    };
    let sql = format!("ALTER USER {} REQUIRE {require}", s.account(to, host));
    conn.0.query_drop(sql).await.map_err(|e| {
        statement_error(
            master,
            action(),
            reason(&e),
            "Check that the master has the CREATE USER privilege",
        )
    })
}

/// testSecret: a trivial query.
pub(super) async fn ping(conn: &mut Conn, pending: &DbSecret) -> Result<(), DbError> {
    bounded(
        STATEMENT_TIMEOUT,
        async {
            conn.0.query_drop("SELECT NOW()").await.map_err(|e| {
                statement_error(
                    pending,
                    "running SELECT NOW()",
                    reason(&e),
                    "Check the server log",
                )
            })
        },
        || {
            statement_error(
                pending,
                "running SELECT NOW()",
                "timed out",
                "Check the server load",
            )
        },
    )
    .await
}
