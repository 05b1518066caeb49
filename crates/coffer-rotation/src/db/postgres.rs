//! PostgreSQL: sessions over tokio-postgres, passwords as SCRAM-SHA-256 verifiers computed
//! here (the server stores a verifier as given, so the plaintext never travels in SQL and never
//! reaches a statement log), names quoted with `escape_identifier`.

use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use postgres_protocol::password::scram_sha_256;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config};
use zeroize::Zeroizing;

use super::tls::{MakeRustls, client_config};
use super::{
    CONNECT_TIMEOUT, DbError, DbSecret, Login, STATEMENT_TIMEOUT, TlsMode, bounded, connect_error,
    statement_error, with_causes,
};

/// The database the templates connect to when the secret names none.
const DEFAULT_DBNAME: &str = "postgres";

pub(super) struct Conn {
    client: Client,
    task: JoinHandle<()>,
}

impl Conn {
    pub(super) async fn close(self) {
        let Self { client, mut task } = self;
        // Dropping the client ends the session (Terminate), which ends the connection task.
        drop(client);
        if tokio::time::timeout(Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// How one attempt failed.
enum Failure {
    /// The server refused the credentials.
    Refused(String),
    /// Not worth retrying without TLS: the server could not be reached at all, or it answered
    /// with an error of its own.
    Final(String),
    /// Possibly TLS-specific (handshake, certificate): a plain connection may work.
    Other(String),
}

pub(super) async fn login(endpoint: &DbSecret, creds: &DbSecret) -> Result<Login<Conn>, DbError> {
    let outcome = match endpoint.tls {
        TlsMode::Disabled => attempt(endpoint, creds, SslMode::Disable, NoTls).await,
        TlsMode::Required | TlsMode::Preferred => {
            let tls = client_config().map_err(|e| {
                connect_error(endpoint, creds, format!("TLS configuration failed: {e}"))
            })?;
            let mode = if endpoint.tls == TlsMode::Required {
                SslMode::Require
            } else {
                // Prefer: TLS when the server offers it, plain when it does not.
                SslMode::Prefer
            };
            match attempt(endpoint, creds, mode, MakeRustls(tls)).await {
                Err(Failure::Other(reason)) if endpoint.tls == TlsMode::Preferred => {
                    tracing::debug!(endpoint = %endpoint.endpoint(), %reason,
                        "TLS connection failed; trying without TLS as the secret has no 'ssl' key");
                    attempt(endpoint, creds, SslMode::Disable, NoTls).await
                }
                other => other,
            }
        }
    };
    match outcome {
        Ok(conn) => Ok(Login::Ok(conn)),
        Err(Failure::Refused(reason)) => Ok(Login::Refused(reason)),
        Err(Failure::Final(reason) | Failure::Other(reason)) => {
            Err(connect_error(endpoint, creds, reason))
        }
    }
}

async fn attempt<T>(
    endpoint: &DbSecret,
    creds: &DbSecret,
    mode: SslMode,
    tls: T,
) -> Result<Conn, Failure>
where
    T: MakeTlsConnect<tokio_postgres::Socket> + Send + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    let mut config = Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .user(&creds.username)
        .password(creds.password.expose())
        .dbname(endpoint.dbname.as_deref().unwrap_or(DEFAULT_DBNAME))
        .application_name("coffer-rotation")
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(mode);
    // connect_timeout bounds the TCP connect; this bounds the whole handshake and login too.
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tls)).await;
    drop(config);
    match connected {
        Err(_) => Err(Failure::Final(format!(
            "no answer within {} s (connection, TLS handshake and login)",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(classify(&e)),
        Ok(Ok((client, connection))) => {
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
                }
            });
            Ok(Conn { client, task })
        }
    }
}

/// SQLSTATEs meaning "these credentials do not log in": invalid_password and
/// invalid_authorization_specification (no such role, no pg_hba.conf entry, login not allowed).
const REFUSED_CODES: &[&str] = &["28P01", "28000"];

fn classify(e: &tokio_postgres::Error) -> Failure {
    if let Some(db) = e.as_db_error() {
        let reason = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        return if REFUSED_CODES.contains(&db.code().code()) {
            Failure::Refused(reason)
        } else {
            Failure::Final(reason)
        };
    }
    // tokio-postgres' error kinds are private; its message names the kind. Only a failed TLS
    // handshake (certificate, protocol) is worth a plain retry.
    let reason = with_causes(e);
    if reason.starts_with("error performing TLS handshake") {
        Failure::Other(reason)
    } else {
        Failure::Final(reason)
    }
}

/// The reason of a statement error, in the server's words (PostgreSQL messages never quote the
/// statement; the statements here carry verifiers, not passwords, in any case).
fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => with_causes(e),
    }
}

/// `ALTER ROLE … PASSWORD '<verifier>'` for `role`.
fn set_password_sql(role: &str, pending: &DbSecret) -> Zeroizing<String> {
    let verifier = Zeroizing::new(scram_sha_256(pending.password.expose()));
    Zeroizing::new(format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        escape_identifier(role),
        escape_literal(&verifier)
    ))
}

/// Single user: the logged-in user sets its own password.
pub(super) async fn set_own_password(conn: &Conn, pending: &DbSecret) -> Result<(), DbError> {
    let sql = set_password_sql(&pending.username, pending);
    let action = format!("changing the password of role '{}'", pending.username);
    bounded(
        STATEMENT_TIMEOUT,
        async {
            conn.client.batch_execute(&sql).await.map_err(|e| {
                statement_error(
                    pending,
                    action.clone(),
                    reason(&e),
                    "A role may change its own password unless the server forbids it (e.g. a password check extension); check the server log",
                )
            })
        },
        || statement_error(pending, action.clone(), "timed out", "Check for locks on pg_authid"),
    )
    .await
}

/// Alternating users, logged in as the master: sets the pending role's password, creating the
/// role first (`LOGIN`, member of the current role, so it has the same privileges) when it
/// does not exist. Creation and grant are one transaction, so a role that exists is complete.
pub(super) async fn set_user_password(
    conn: &Conn,
    master: &DbSecret,
    current: &DbSecret,
    pending: &DbSecret,
) -> Result<(), DbError> {
    let p = &pending.username;
    let c = &current.username;
    bounded(
        STATEMENT_TIMEOUT,
        async {
            let exists = conn
                .client
                .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[p])
                .await
                .map_err(|e| {
                    statement_error(
                        master,
                        format!("looking up role '{p}'"),
                        reason(&e),
                        "Check that the master may read pg_catalog.pg_roles",
                    )
                })?
                .is_some();
            if exists {
                let sql = set_password_sql(p, pending);
                conn.client.batch_execute(&sql).await.map_err(|e| {
                    statement_error(
                        master,
                        format!("changing the password of role '{p}'"),
                        reason(&e),
                        "Check that the master is a superuser or has CREATEROLE (and, from PostgreSQL 16, ADMIN OPTION on the role)",
                    )
                })?;
                return Ok(());
            }
            let verifier = Zeroizing::new(scram_sha_256(pending.password.expose()));
            let sql = Zeroizing::new(format!(
                "BEGIN; CREATE ROLE {pi} WITH LOGIN PASSWORD {v}; GRANT {ci} TO {pi}; COMMIT",
                pi = escape_identifier(p),
                ci = escape_identifier(c),
                v = escape_literal(&verifier),
            ));
            conn.client.batch_execute(&sql).await.map_err(|e| {
                statement_error(
                    master,
                    format!("creating role '{p}' as a member of role '{c}'"),
                    reason(&e),
                    format!(
                        "Check that the master is a superuser, or has CREATEROLE and may grant role '{c}' (ADMIN OPTION)"
                    ),
                )
            })?;
            tracing::info!(role = %p, member_of = %c, "created the alternate role");
            Ok(())
        },
        || {
            statement_error(
                master,
                format!("setting the password of role '{p}'"),
                "timed out",
                "Check for locks on pg_authid",
            )
        },
    )
    .await
}

/// testSecret: a trivial query.
pub(super) async fn ping(conn: &Conn, pending: &DbSecret) -> Result<(), DbError> {
    bounded(
        STATEMENT_TIMEOUT,
        async {
            conn.client
                .simple_query("SELECT now()")
                .await
                .map(|_| ())
                .map_err(|e| {
                    statement_error(
                        pending,
                        "running SELECT now()",
                        reason(&e),
                        "Check the server log",
                    )
                })
        },
        || {
            statement_error(
                pending,
                "running SELECT now()",
                "timed out",
                "Check the server load",
            )
        },
    )
    .await
}
