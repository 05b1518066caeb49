//! End-to-end test support: start the real `coffer` binary as a child process and talk to it
//! through the official AWS SDK for Rust, exactly as a user would.
//!
//! This crate owns the process harness ([`Server`], [`init_data_dir`]), the SDK client
//! construction ([`sdk_client`]) and a few helpers the suites share. It must never link the
//! server crates: everything it knows about coffer comes from the command line and the wire.
//!
//! The binary is `$COFFER_BIN`, else `<target>/debug/coffer` (honouring `CARGO_TARGET_DIR`);
//! cargo does not build another package's binary for an integration test, so run
//! `cargo build -p coffer-cli` first.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials as SdkCredentials, Region};
use aws_sdk_secretsmanager::error::SdkError;

pub use aws_sdk_secretsmanager as sm;

/// How long a server may take to print its banner or accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the harness falls back to SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// An access key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// What `coffer init --format json` prints: the first account and its root credentials.
#[derive(Clone, Debug)]
pub struct InitOutput {
    pub account_id: String,
    pub credentials: Credentials,
}

/// Flags for `coffer server --dev`.
#[derive(Clone, Debug, Default)]
pub struct DevOptions {
    /// `--manual-clock`: time stands still until `POST /_coffer/clock/advance`.
    pub manual_clock: bool,
    /// `--accept-any-credentials`: any well-formed SigV4 signature is accepted.
    pub accept_any_credentials: bool,
    /// `--account-id ID`.
    pub account_id: Option<String>,
    /// Extra environment for the child (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

/// The `coffer` binary under test.
pub fn coffer_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("COFFER_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("COFFER_BIN={} is not a file", bin.display());
    }
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        }
        None => root.join("target"),
    };
    let bin = target
        .join("debug")
        .join(format!("coffer{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "{} does not exist; build it first: cargo build -p coffer-cli (or set COFFER_BIN)",
            bin.display()
        )
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize().unwrap_or(dir)
}

/// Runs `coffer init --data-dir DIR --format json` and returns what it printed.
pub fn init_data_dir(dir: &Path) -> Result<InitOutput> {
    init_data_dir_with(dir, &[], &[])
}

/// As [`init_data_dir`], with more flags and environment (e.g. another root key provider).
pub fn init_data_dir_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<InitOutput> {
    let out = Command::new(coffer_bin()?)
        .arg("init")
        .arg("--data-dir")
        .arg(dir)
        .args(["--format", "json"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .context("running coffer init")?;
    if !out.status.success() {
        bail!(
            "coffer init failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = match (stdout.find('{'), stdout.rfind('}')) {
        (Some(start), Some(end)) if start < end => &stdout[start..=end],
        _ => bail!("coffer init printed no JSON object: {stdout:?}"),
    };
    let v: serde_json::Value = serde_json::from_str(json).context("parsing coffer init JSON")?;
    let field = |name: &str| -> Result<String> {
        v.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("coffer init JSON has no string field {name:?}: {json}"))
    };
    Ok(InitOutput {
        account_id: field("account_id")?,
        credentials: Credentials {
            access_key_id: field("access_key_id")?,
            secret_access_key: field("secret_access_key")?,
        },
    })
}

/// A free TCP port on 127.0.0.1 (free when this returns; the OS may hand it out again later).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral port")?;
    Ok(listener.local_addr()?.port())
}

/// A running `coffer server`. Dropping it asks the process to stop (SIGTERM, so a dev server
/// removes its throw-away data directory and root key) and kills it if it does not.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub addr: SocketAddr,
    pub account_id: String,
    pub region: String,
    pub credentials: Credentials,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// `coffer server --dev --listen 127.0.0.1:0`.
    pub fn dev() -> Result<Server> {
        Server::dev_with(DevOptions::default())
    }

    /// `coffer server --dev --listen 127.0.0.1:0` with the given flags; parses the banner.
    pub fn dev_with(opts: DevOptions) -> Result<Server> {
        let mut cmd = Command::new(coffer_bin()?);
        cmd.args(["server", "--dev", "--listen", "127.0.0.1:0"]);
        if opts.manual_clock {
            cmd.arg("--manual-clock");
        }
        if opts.accept_any_credentials {
            cmd.arg("--accept-any-credentials");
        }
        if let Some(id) = &opts.account_id {
            cmd.args(["--account-id", id]);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let (child, lines, stdout, stderr, readers) = spawn(cmd)?;
        let mut server = Server {
            child,
            endpoint: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_id: String::new(),
            region: String::new(),
            credentials: Credentials {
                access_key_id: String::new(),
                secret_access_key: String::new(),
            },
            stdout,
            stderr,
            readers,
        };
        let banner = server.read_banner(&lines)?;
        server.endpoint = banner.endpoint;
        server.addr = endpoint_addr(&server.endpoint)?;
        server.account_id = banner
            .account_id
            .or(opts.account_id)
            .unwrap_or_else(|| "000000000000".to_owned());
        server.region = banner.region;
        server.credentials = banner.credentials;
        server.wait_until_accepting()?;
        Ok(server)
    }

    /// `coffer server --data-dir DIR --listen 127.0.0.1:PORT --insecure-http` on a free port.
    pub fn data_dir(dir: &Path, init: &InitOutput, env: &[(&str, &str)]) -> Result<Server> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(coffer_bin()?);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", &addr.to_string(), "--insecure-http"])
            .envs(env.iter().copied());
        let (child, _lines, stdout, stderr, readers) = spawn(cmd)?;
        let server = Server {
            child,
            endpoint: format!("http://{addr}"),
            addr,
            account_id: init.account_id.clone(),
            region: "us-east-1".to_owned(),
            credentials: init.credentials.clone(),
            stdout,
            stderr,
            readers,
        };
        server.wait_until_accepting_or_exit()
    }

    /// An SDK client for this server with its root credentials.
    pub fn client(&self) -> sm::Client {
        sdk_client(&self.endpoint, &self.region, &self.credentials)
    }

    /// An SDK client for this server with other credentials.
    pub fn client_with(&self, credentials: &Credentials) -> sm::Client {
        sdk_client(&self.endpoint, &self.region, credentials)
    }

    /// A config builder for this server, for tests that tune retries or timeouts.
    pub fn config_builder(&self) -> sm::config::Builder {
        sdk_config_builder(&self.endpoint, &self.region, &self.credentials)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server printed so far, stdout then stderr.
    pub fn output(&self) -> Vec<u8> {
        let mut all = lock(&self.stdout).clone();
        all.extend_from_slice(&lock(&self.stderr));
        all
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code runs.
    pub fn kill(mut self) -> Result<Vec<u8>> {
        self.child.kill().context("killing coffer")?;
        self.child.wait().context("reaping coffer")?;
        Ok(self.finish_output())
    }

    /// SIGTERM and wait for the process to exit (SIGKILL after a timeout, which is an error).
    pub fn stop(mut self) -> Result<Vec<u8>> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("coffer exited with {status} after SIGTERM");
                }
                return Ok(self.finish_output());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!(
                    "coffer did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it. Output:\n{}",
                    String::from_utf8_lossy(&self.finish_output())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /_coffer/clock/advance {"seconds":N}` (dev server with `--manual-clock`).
    pub fn advance_clock(&self, seconds: u64) -> Result<()> {
        let body = format!("{{\"seconds\":{seconds}}}");
        post_json(self.addr, "/_coffer/clock/advance", &body).map(drop)
    }

    /// `POST /_coffer/tasks/run`: run the background tasks (purge …) once, now.
    pub fn run_tasks(&self) -> Result<()> {
        post_json(self.addr, "/_coffer/tasks/run", "{}").map(drop)
    }

    /// Joins the output readers (the pipes close once the process is gone) and returns the output.
    fn finish_output(&mut self) -> Vec<u8> {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output()
    }

    fn read_banner(&mut self, lines: &mpsc::Receiver<String>) -> Result<Banner> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut endpoint = None;
        let mut access_key_id = None;
        let mut secret_access_key = None;
        let mut region = None;
        let mut account_id = None;
        loop {
            if let (Some(e), Some(a), Some(s), Some(r)) =
                (&endpoint, &access_key_id, &secret_access_key, &region)
            {
                return Ok(Banner {
                    endpoint: String::clone(e),
                    region: String::clone(r),
                    account_id,
                    credentials: Credentials {
                        access_key_id: String::clone(a),
                        secret_access_key: String::clone(s),
                    },
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("{}", self.died(status));
                    }
                    if left.is_zero() {
                        bail!(
                            "coffer printed no complete banner within {STARTUP_TIMEOUT:?}; output:\n{}",
                            String::from_utf8_lossy(&self.output())
                        );
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!("{}", self.died(status));
                }
            };
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("export ") {
                let Some((key, value)) = rest.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches(['"', '\'']);
                let slot = match key.trim() {
                    "AWS_ENDPOINT_URL" => &mut endpoint,
                    "AWS_ACCESS_KEY_ID" => &mut access_key_id,
                    "AWS_SECRET_ACCESS_KEY" => &mut secret_access_key,
                    "AWS_REGION" => &mut region,
                    _ => continue,
                };
                *slot = Some(value.to_owned());
            } else if line.contains("listening on") {
                // "coffer dev server listening on http://127.0.0.1:PORT (account ID, region R)"
                if let Some((_, rest)) = line.split_once("(account ") {
                    account_id = rest.split([',', ')']).next().map(|s| s.trim().to_owned());
                }
            }
        }
    }

    fn wait_until_accepting(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{}", self.died(status));
            }
            if Instant::now() > deadline {
                bail!(
                    "coffer did not accept connections on {} within {STARTUP_TIMEOUT:?}; output:\n{}",
                    self.addr,
                    String::from_utf8_lossy(&self.output())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_accepting_or_exit(mut self) -> Result<Server> {
        self.wait_until_accepting()?;
        Ok(self)
    }

    fn died(&mut self, status: std::process::ExitStatus) -> String {
        format!(
            "coffer exited during start-up ({status}); output:\n{}",
            String::from_utf8_lossy(&self.finish_output())
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Banner {
    endpoint: String,
    region: String,
    account_id: Option<String>,
    credentials: Credentials,
}

type Spawned = (
    Child,
    mpsc::Receiver<String>,
    Arc<Mutex<Vec<u8>>>,
    Arc<Mutex<Vec<u8>>>,
    Vec<JoinHandle<()>>,
);

/// Starts the command with piped output; both streams are captured in full for the life of the
/// process (the canary test scans them), and stdout lines are also sent to the banner parser.
fn spawn(mut cmd: Command) -> Result<Spawned> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let out: ChildStdout = child.stdout.take().context("no stdout pipe")?;
    let err: ChildStderr = child.stderr.take().context("no stderr pipe")?;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let readers = vec![
        capture(out, Arc::clone(&stdout), Some(tx)),
        capture(err, Arc::clone(&stderr), None),
    ];
    Ok((child, rx, stdout, stderr, readers))
}

fn capture(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<u8>>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    lock(&sink).extend_from_slice(&line);
                    if let Some(tx) = &lines {
                        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                    }
                }
            }
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn endpoint_addr(endpoint: &str) -> Result<SocketAddr> {
    let host_port = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("dev endpoint is not plain http: {endpoint}"))?
        .trim_end_matches('/');
    host_port
        .parse()
        .with_context(|| format!("dev endpoint {endpoint} is not http://IP:PORT"))
}

/// A minimal HTTP/1.1 POST for the dev-only control endpoints (not AWS APIs, so not signed).
fn post_json(addr: SocketAddr, path: &str, body: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status: u16 = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed response from {path}: {response:?}"))?;
    if !(200..300).contains(&status) {
        bail!("POST {path} answered {status}: {response}");
    }
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// The SDK configuration every suite uses: static credentials, fixed endpoint and region,
/// and an operation timeout so a hung server fails a test instead of stalling it.
pub fn sdk_config_builder(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
) -> sm::config::Builder {
    sm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(SdkCredentials::new(
            &credentials.access_key_id,
            &credentials.secret_access_key,
            None,
            None,
            "coffer-e2e",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .retry_config(RetryConfig::standard())
}

/// An SDK client with static credentials against `endpoint`.
pub fn sdk_client(endpoint: &str, region: &str, credentials: &Credentials) -> sm::Client {
    sm::Client::from_conf(sdk_config_builder(endpoint, region, credentials).build())
}

/// The modeled service error of a call that must fail; panics (with the whole error) if the
/// call succeeded or failed before reaching the service (connection, timeout, parse …).
#[track_caller]
pub fn service_error<T, E, R>(result: Result<T, SdkError<E, R>>) -> E
where
    T: std::fmt::Debug,
    E: std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(v) => panic!("expected a service error, the call succeeded: {v:?}"),
        Err(SdkError::ServiceError(e)) => e.into_err(),
        Err(other) => panic!("expected a service error, got {other:?}"),
    }
}

/// Random-enough lowercase hex for names, tokens and canaries (not for keys).
pub fn random_hex(len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

/// A UUID-shaped random token (36 chars), usable as a `ClientRequestToken`.
pub fn random_token() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The SQLite databases under `dir`, recognised by their header rather than their name.
pub fn sqlite_files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dbs = Vec::new();
    for file in files_under(dir)? {
        let mut header = [0u8; 16];
        let mut f = std::fs::File::open(&file)?;
        if f.read_exact(&mut header).is_ok() && &header == b"SQLite format 3\0" {
            dbs.push(file);
        }
    }
    Ok(dbs)
}

/// Byte offset of `needle` in `haystack`, if present.
pub fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
