//! Running a rotation function as a local program: the event on stdin, the callback
//! credentials in a minimal environment, its own process group, a hard timeout.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout, timeout_at};

use super::error::{InvokeError, InvokeErrorKind, Target, chain};
use super::redact::{Redactor, Tail};
use super::{
    AbortOnDrop, CallbackCredentials, DEFAULT_TIMEOUT, InvokeOutcome, OutcomeDetail, RotationEvent,
    deadline,
};

/// How much of the end of stdout and of stderr is kept for the outcome or the error.
const OUTPUT_TAIL: usize = 4096;

/// After the program is gone (and its group killed), how long its output may still take to
/// arrive: only a descendant that left the group can hold the pipes open longer.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// `PATH` when coffer itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The only variables taken from coffer's own environment (besides `PATH`).
const INHERITED: [&str; 2] = ["HOME", "LANG"];

/// A rotation function run as a local program.
#[derive(Clone)]
pub struct Executable {
    /// The program; without a `/`, looked up in `PATH`.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The program (and its process group) is killed when it runs longer than this.
    pub timeout: Duration,
    /// Where it runs; coffer's working directory when `None`.
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables set by the operator (e.g. `AWS_CA_BUNDLE`,
    /// `EXCLUDE_CHARACTERS`). The callback variables win over one of the same name.
    /// `Debug` shows the names only.
    pub env: Vec<(String, String)>,
}

impl Executable {
    /// `program` without arguments, with [`DEFAULT_TIMEOUT`], in coffer's working directory.
    #[must_use]
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            working_dir: None,
            env: Vec::new(),
        }
    }
}

impl fmt::Debug for Executable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Executable")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("timeout", &self.timeout)
            .field("working_dir", &self.working_dir)
            .field("env", &env)
            .finish()
    }
}

/// Runs the program once for `event` (see the module documentation). Exit status 0 within
/// `exe.timeout` is success.
pub async fn invoke_executable(
    exe: &Executable,
    event: &RotationEvent,
    creds: &CallbackCredentials,
) -> Result<InvokeOutcome, InvokeError> {
    let target = Target::Executable {
        program: exe.program.clone(),
    };
    let fail = |kind| InvokeError::new(target.clone(), event.step, kind);
    let redactor = Redactor::new([
        creds.secret_access_key.expose(),
        creds.session_token.as_bytes(),
        event.rotation_token.as_bytes(),
    ]);

    let callback =
        callback_env(creds).map_err(|reason| fail(InvokeErrorKind::Config { reason }))?;
    let mut command = Command::new(&exe.program);
    command
        .args(&exe.args)
        .env_clear()
        .envs(inherited_env())
        .envs(
            exe.env
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        )
        .envs(callback)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &exe.working_dir {
        command.current_dir(dir);
    }
    #[cfg(unix)]
    command.process_group(0);

    tracing::debug!(executable = %target, step = %event.step, "invoking rotation executable");
    let started = Instant::now();
    let deadline = deadline(started, exe.timeout);
    let mut child = command.spawn().map_err(|e| {
        let mut reason = chain(&e);
        if let Some(dir) = &exe.working_dir {
            reason.push_str(&format!(" (working directory {})", dir.display()));
        }
        fail(InvokeErrorKind::Spawn { reason })
    })?;
    let mut group = ProcessGroup::of(&child);

    let stdout = Arc::new(Mutex::new(Tail::new(OUTPUT_TAIL)));
    let stderr = Arc::new(Mutex::new(Tail::new(OUTPUT_TAIL)));
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        readers.push(drain(pipe, Arc::clone(&stdout)));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(drain(pipe, Arc::clone(&stderr)));
    }
    // The event is small, but written concurrently all the same: a program that never reads
    // stdin must not block coffer. One that exits without reading it is not an error here.
    let _writer = child.stdin.take().map(|mut stdin| {
        let mut input = event.to_json().into_bytes();
        input.push(b'\n');
        AbortOnDrop(tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        }))
    });

    let waited = timeout_at(deadline, child.wait()).await;
    // Whatever is still running in the group goes: all of it after a timeout, leftovers
    // (background children) after an exit.
    group.kill();
    let result = match waited {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(InvokeErrorKind::Io {
            reason: format!("waiting for the program failed: {}", chain(&e)),
        }),
        Err(_elapsed) => {
            // Reap it (and kill it, where there are no process groups).
            let _ = child.kill().await;
            Err(InvokeErrorKind::Timeout {
                after: exe.timeout,
                output: String::new(),
            })
        }
    };
    let elapsed = started.elapsed();
    let _ = timeout(DRAIN_GRACE, async {
        for reader in &mut readers {
            let _ = (&mut reader.0).await;
        }
    })
    .await;
    drop(readers);
    let stdout = lock(&stdout).quote(&redactor);
    let stderr = lock(&stderr).quote(&redactor);

    match result {
        Ok(status) if status.success() => {
            tracing::debug!(executable = %target, step = %event.step, ?elapsed, "rotation executable succeeded");
            Ok(InvokeOutcome {
                elapsed,
                detail: OutcomeDetail::Exited { stdout, stderr },
            })
        }
        Ok(status) => Err(fail(InvokeErrorKind::Exited {
            code: status.code(),
            signal: signal_of(status),
            stderr,
            stdout,
        })),
        Err(InvokeErrorKind::Timeout { after, .. }) => Err(fail(InvokeErrorKind::Timeout {
            after,
            output: if stderr.is_empty() { stdout } else { stderr },
        })),
        Err(kind) => Err(fail(kind)),
    }
}

/// `PATH`, `HOME` and `LANG` from coffer's environment: nothing else of it, since it may
/// hold coffer's own secrets (a root key passphrase, a PKCS#11 PIN).
fn inherited_env() -> Vec<(&'static str, OsString)> {
    let mut env = vec![(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    )];
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            env.push((name, value));
        }
    }
    env
}

/// The variables through which boto3 (and every AWS SDK) finds coffer and the credentials.
fn callback_env(creds: &CallbackCredentials) -> Result<Vec<(&'static str, &str)>, String> {
    let secret_access_key = creds
        .secret_access_key
        .as_str()
        .ok_or_else(|| "the callback secret access key is not UTF-8".to_owned())?;
    let endpoint = creds.endpoint_url.as_str();
    let region = creds.region.as_str();
    Ok(vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ENDPOINT_URL_SECRETSMANAGER", endpoint),
        ("SECRETS_MANAGER_ENDPOINT", endpoint),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret_access_key),
        ("AWS_SESSION_TOKEN", creds.session_token.as_str()),
    ])
}

/// Reads `pipe` to its end, keeping the tail.
fn drain<R>(mut pipe: R, tail: Arc<Mutex<Tail>>) -> AbortOnDrop
where
    R: AsyncRead + Unpin + Send + 'static,
{
    AbortOnDrop(tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => lock(&tail).push(&buf[..n]),
            }
        }
    }))
}

fn lock(tail: &Mutex<Tail>) -> MutexGuard<'_, Tail> {
    tail.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

/// The program's process group (it leads it: `process_group(0)`), killed with `SIGKILL`
/// at the latest when this is dropped, so that a cancelled invocation leaves nothing behind.
struct ProcessGroup {
    #[cfg(unix)]
    leader: Option<rustix::process::Pid>,
}

impl ProcessGroup {
    fn of(child: &Child) -> Self {
        #[cfg(unix)]
        {
            // Never 0 or 1: kill(-1) would signal every process coffer may signal.
            let leader = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .filter(|&id| id > 1)
                .and_then(rustix::process::Pid::from_raw);
            Self { leader }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Self {}
        }
    }

    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(leader) = self.leader.take() {
            match rustix::process::kill_process_group(leader, rustix::process::Signal::KILL) {
                // Nothing left in the group: the usual case after a clean exit.
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not kill a rotation executable's process group");
                }
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}
