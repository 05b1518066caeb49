//! Where the root key comes from (`--root-key file|passphrase|pkcs11` and their inputs), shared
//! by `init`, `server` and `root-key`, and `coffer root-key rotate`.
//!
//! Secrets that unlock a root key (a passphrase, a PKCS#11 PIN) are read from the environment
//! or standard input only, never from flags, which other users can read in the process list.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use coffer_core::{Pkcs11Config, ProviderKind, Unlock};
use zeroize::Zeroizing;

use crate::Failure;
use crate::admin::{self, OfflineStore, Owner};

/// The flags that say how to unlock (or create) a store's root key.
#[derive(Debug, Args, Default)]
pub(crate) struct RootKeyFlags {
    /// Where the root key lives: `file` (DATA_DIR/root.key), `passphrase` (derived with
    /// Argon2id from COFFER_ROOT_PASSPHRASE or --passphrase-stdin) or `pkcs11` (an AES key
    /// inside an HSM token; PIN from COFFER_PKCS11_PIN). Default: `file` for `init`; for an
    /// existing store, what it was created with.
    #[arg(long, env = "COFFER_ROOT_KEY", value_name = "PROVIDER")]
    root_key: Option<ProviderKind>,

    /// Read the root key passphrase from the first line of standard input instead of
    /// COFFER_ROOT_PASSPHRASE.
    #[arg(long)]
    passphrase_stdin: bool,

    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, env = "COFFER_PKCS11_MODULE", value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,

    /// The label of the PKCS#11 token that holds (or will hold) the root key. Needed by
    /// `init`; an existing store remembers it.
    #[arg(long, env = "COFFER_PKCS11_TOKEN_LABEL", value_name = "LABEL")]
    pkcs11_token_label: Option<String>,
}

fn env_secret(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name).ok().map(Zeroizing::new)
}

impl RootKeyFlags {
    /// How to unlock the root key of `data_dir`; `creating` for `init`.
    pub(crate) fn unlock(&self, data_dir: &Path, creating: bool) -> anyhow::Result<Unlock> {
        let recorded = if creating {
            None
        } else {
            coffer_core::root_key_provider(data_dir)?
        };
        let kind = self.root_key.or(recorded).unwrap_or(ProviderKind::File);
        Ok(match kind {
            ProviderKind::File => Unlock::File,
            ProviderKind::Passphrase => {
                let passphrase = if self.passphrase_stdin {
                    let mut line = Zeroizing::new(String::new());
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("cannot read the passphrase from standard input")?;
                    Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
                } else {
                    env_secret("COFFER_ROOT_PASSPHRASE").ok_or_else(|| {
                        anyhow!("the root key is protected by a passphrase: set COFFER_ROOT_PASSPHRASE or pass --passphrase-stdin")
                    })?
                };
                if passphrase.is_empty() {
                    bail!("the root key passphrase is empty; give a non-empty passphrase");
                }
                Unlock::Passphrase(passphrase)
            }
            ProviderKind::Pkcs11 => {
                let module = self.pkcs11_module.clone().ok_or_else(|| {
                    anyhow!("the root key is in a PKCS#11 token: give its module with --pkcs11-module or COFFER_PKCS11_MODULE (SoftHSM: /usr/lib/softhsm/libsofthsm2.so)")
                })?;
                let token_label = self.pkcs11_token_label.clone().unwrap_or_default();
                if creating && token_label.is_empty() {
                    bail!(
                        "name the PKCS#11 token that will hold the root key with --pkcs11-token-label or COFFER_PKCS11_TOKEN_LABEL"
                    );
                }
                let pin = env_secret("COFFER_PKCS11_PIN").ok_or_else(|| {
                    anyhow!("set COFFER_PKCS11_PIN to the token's user PIN (it is never taken from a flag)")
                })?;
                Unlock::Pkcs11(Pkcs11Config {
                    module,
                    token_label,
                    pin,
                })
            }
        })
    }
}

const EXAMPLES: &str = "\
Examples:
  Rotate the root key of a running server (reads go on; progress is shown):
    coffer root-key rotate --data-dir /var/lib/coffer

  A store whose root key is in an HSM (the server need not be running):
    COFFER_PKCS11_PIN=... coffer root-key rotate --data-dir /var/lib/coffer \\
        --pkcs11-module /usr/lib/softhsm/libsofthsm2.so";

/// Manage the root key that protects every other key.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct RootKeyArgs {
    #[command(subcommand)]
    command: RootKeyCommand,
}

#[derive(Debug, Subcommand)]
enum RootKeyCommand {
    /// Make a new root key, re-seal every key under it, then destroy the old one.
    ///
    /// Talks to the server running on the data directory (through DATA_DIR/admin.sock), which
    /// keeps serving while it rotates; with no server running, rotates the store directly.
    /// An interrupted rotation resumes where it stopped when run again (or when the server
    /// starts).
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The data directory made by `coffer init`.
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,

    #[command(flatten)]
    unlock: RootKeyFlags,
}

pub(crate) fn run(args: RootKeyArgs) -> Result<(), Failure> {
    crate::init_tracing("warn");
    match args.command {
        RootKeyCommand::Rotate(rotate) => run_rotate(&rotate).map_err(Failure::from),
    }
}

/// Progress on standard error: a bar on a terminal, nothing in between otherwise.
struct Progress {
    terminal: bool,
}

impl Progress {
    fn show(&self, done: usize, total: usize) {
        if !self.terminal || total == 0 {
            return;
        }
        let width = 30;
        let filled = done * width / total;
        eprint!(
            "\rre-sealing under the new root key [{}{}] {done}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }

    fn end(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

fn run_rotate(args: &RotateArgs) -> anyhow::Result<()> {
    let progress = Progress {
        terminal: std::io::stderr().is_terminal(),
    };
    let (generation, resealed, total) = match admin::reach(&args.data_dir, &args.unlock)? {
        Owner::Server(stream) => rotate_through_server(stream, &progress)?,
        Owner::Offline(store) => rotate_offline(&store, &progress)?,
    };
    progress.end();
    println!(
        "root key rotated: generation {generation} is in use; {resealed} of {total} keys re-sealed; the old root key is destroyed"
    );
    Ok(())
}

fn rotate_through_server(
    stream: UnixStream,
    progress: &Progress,
) -> anyhow::Result<(u64, u64, u64)> {
    for v in admin::request(stream, "rotate-root-key")? {
        let v = v.context("the server stopped answering during the rotation")?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            progress.end();
            bail!("the server could not rotate the root key: {e}");
        }
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        if let Some(generation) = num("generation") {
            return Ok((
                generation,
                num("resealed").unwrap_or(0),
                num("total").unwrap_or(0),
            ));
        }
        if let (Some(done), Some(total)) = (num("done"), num("total")) {
            progress.show(
                usize::try_from(done).unwrap_or(0),
                usize::try_from(total).unwrap_or(0),
            );
        }
    }
    bail!(
        "the server closed the admin socket before the rotation finished; run the command again to resume"
    )
}

fn rotate_offline(store: &OfflineStore, progress: &Progress) -> anyhow::Result<(u64, u64, u64)> {
    let outcome = store
        .block_on(
            store
                .coffer
                .rotate_root_key(|done, total| progress.show(done, total)),
        )
        .context("the root key rotation stopped; run the command again to resume")?;
    Ok((
        u64::from(outcome.generation),
        outcome.resealed as u64,
        outcome.total as u64,
    ))
}
