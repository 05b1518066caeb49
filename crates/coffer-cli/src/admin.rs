//! Reaching the one process that owns a store: the server running on the data directory,
//! through its admin socket (`DATA_DIR/admin.sock`, one request line, JSON lines back), or,
//! when no server runs, the store itself, opened by this process. Shared by `coffer root-key`
//! and `coffer account`.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use coffer_core::Coffer;

use crate::root_key::RootKeyFlags;

/// Who answers requests about a data directory.
pub(crate) enum Owner {
    /// A server runs on it: requests go through its admin socket.
    Server(UnixStream),
    /// No server runs on it: this process opened the store.
    Offline(OfflineStore),
}

/// A store opened by this process, with a runtime for the library's async calls.
pub(crate) struct OfflineStore {
    pub(crate) coffer: Arc<Coffer>,
    runtime: tokio::runtime::Runtime,
}

impl OfflineStore {
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// The server running on `data_dir` if there is one, else the store opened with `unlock`
/// (which is only read then: a running server has the root key already).
pub(crate) fn reach(data_dir: &Path, unlock: &RootKeyFlags) -> anyhow::Result<Owner> {
    if !coffer_server::is_initialised(data_dir)? {
        bail!(
            "{} is not an initialised coffer data directory; run `coffer init --data-dir {}` first",
            data_dir.display(),
            data_dir.display()
        );
    }
    if let Ok(stream) = UnixStream::connect(data_dir.join(coffer_server::ADMIN_SOCKET)) {
        return Ok(Owner::Server(stream));
    }
    let unlock = unlock.unlock(data_dir, false)?;
    let coffer = Arc::new(
        Coffer::open_with(data_dir, Arc::new(coffer_core::clock::SystemClock), &unlock)
            .with_context(|| format!("cannot open {}", data_dir.display()))?,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(Owner::Offline(OfflineStore { coffer, runtime }))
}

/// Sends `request` to the server and returns its answer's JSON lines as they arrive.
pub(crate) fn request(
    mut stream: UnixStream,
    request: &str,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<serde_json::Value>>> {
    stream
        .write_all(format!("{request}\n").as_bytes())
        .context("cannot talk to the running server through its admin socket")?;
    Ok(BufReader::new(stream).lines().map(|line| {
        let line = line.context("the server closed the admin socket before answering")?;
        serde_json::from_str::<serde_json::Value>(&line)
            .with_context(|| format!("unexpected answer from the server: {line}"))
    }))
}

/// Sends `request` to the server and returns its one answer line.
pub(crate) fn ask(stream: UnixStream, request_line: &str) -> anyhow::Result<serde_json::Value> {
    match request(stream, request_line)?.next() {
        Some(answer) => answer,
        None => bail!("the server closed the admin socket without answering"),
    }
}

/// The answer's result, or its `{"error": "…"}` as an error.
pub(crate) fn result(answer: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    match answer.get("error") {
        Some(e) => bail!("{}", e.as_str().unwrap_or("the request failed")),
        None => Ok(answer),
    }
}
