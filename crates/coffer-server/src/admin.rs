//! The operator's channel to a running server: a Unix socket `DATA_DIR/admin.sock`, mode
//! 0600 inside the 0700 data directory, so only whoever may read the data directory may use
//! it (the same people who could stop the server and open the store themselves).
//!
//! One request per connection, one line of text; the answer is JSON lines, the last of which
//! is the result or `{"error":"…"}`:
//!
//! - `rotate-root-key`: the running server rotates its root key while it keeps serving reads,
//!   and streams `{"done":N,"total":M}` progress, then `{"generation":G,"resealed":R,"total":M}`.
//! - `create-account [ID]`: a new account (12-digit `ID`, random if not given) with its own
//!   root access key: `{"account_id":…,"access_key_id":…,"secret_access_key":…}`.
//! - `list-accounts`: `{"accounts":[{"account_id":…,"created":"ISO 8601"},…]}`.
//!
//! [`create_account`] and [`list_accounts`] make those answers; the CLI calls them itself on
//! a store no server is running on, so both paths answer alike. This module must never
//! accept a request from the network.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_core::{Coffer, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// File name of the admin socket inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";

/// The admin socket of a running server; removes its file when dropped.
pub(crate) struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `DATA_DIR/admin.sock`, replacing a stale one left by a server that died.
    pub(crate) fn bind(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(ADMIN_SOCKET);
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running coffer", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { listener, path })
    }

    /// Serves requests until the task is aborted.
    pub(crate) async fn serve(self, coffer: Arc<Coffer>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, coffer.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(stream: UnixStream, coffer: Arc<Coffer>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(256);
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let answer = match (words.next(), words.next(), words.next()) {
        (Some("rotate-root-key"), None, _) => rotate_root_key(&coffer, &mut write).await,
        (Some("create-account"), id, None) => create_account(&coffer, id).await,
        (Some("list-accounts"), None, _) => list_accounts(&coffer).await,
        _ => serde_json::json!({"error": format!(
            "unknown admin request {:?}; known: rotate-root-key, create-account [ID], list-accounts",
            line.trim()
        )}),
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

/// The answer to `create-account [ID]`: the new account's id and root credentials (the only
/// time the secret access key is shown), or `{"error":"…"}`.
pub async fn create_account(coffer: &Coffer, account_id: Option<&str>) -> serde_json::Value {
    match coffer.create_account(account_id).await {
        Ok(outcome) => match outcome.secret_access_key.as_str() {
            Some(secret) => serde_json::json!({
                "account_id": outcome.account_id,
                "access_key_id": outcome.access_key_id,
                "secret_access_key": secret,
            }),
            None => serde_json::json!({"error": format!(
                "account {} was created, but its secret access key is not text; this is a bug in coffer",
                outcome.account_id
            )}),
        },
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

/// The answer to `list-accounts`: every account with its creation time, in id order.
pub async fn list_accounts(coffer: &Coffer) -> serde_json::Value {
    match coffer.store().list_accounts().await {
        Ok(mut accounts) => {
            accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
            let accounts: Vec<serde_json::Value> = accounts
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "account_id": a.account_id,
                        "created": coffer_core::clock::iso8601(a.created_ms),
                    })
                })
                .collect();
            serde_json::json!({ "accounts": accounts })
        }
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

async fn rotate_root_key(
    coffer: &Arc<Coffer>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> serde_json::Value {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
    let worker = {
        let coffer = coffer.clone();
        tokio::spawn(async move {
            coffer
                .rotate_root_key(move |done, total| {
                    let _ = tx.send((done, total));
                })
                .await
        })
    };
    while let Some((done, total)) = rx.recv().await {
        let line = format!("{}\n", serde_json::json!({"done": done, "total": total}));
        // A client that went away does not stop the rotation.
        let _ = write.write_all(line.as_bytes()).await;
    }
    match worker.await {
        Ok(Ok(r)) => {
            serde_json::json!({"generation": r.generation, "resealed": r.resealed, "total": r.total})
        }
        Ok(Err(e)) => serde_json::json!({"error": e.to_string()}),
        Err(e) => serde_json::json!({"error": format!("the rotation task failed: {e}")}),
    }
}

/// Continues a rotation that a previous run of the server did not finish.
pub(crate) async fn resume_rotation(coffer: Arc<Coffer>) {
    if !coffer.root_rotation_in_progress() {
        return;
    }
    tracing::info!("resuming an unfinished root key rotation");
    match coffer.rotate_root_key(|_, _| {}).await {
        Ok(r) => tracing::info!(
            generation = r.generation,
            resealed = r.resealed,
            "root key rotation finished"
        ),
        Err(e) => {
            tracing::error!(error = %e, "root key rotation failed; run `coffer root-key rotate` to retry")
        }
    }
}
