//! The server's TLS: the self-signed certificate `coffer init` writes into the data directory,
//! and the rustls configuration the server loads from it. rustls uses the aws-lc-rs provider,
//! named explicitly so that no other provider linked into the binary can be picked by
//! accident. The private key file is created with mode 0600 and never logged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ServerError;

/// Names every self-signed certificate is valid for, so local clients verify it as is.
const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Apple platforms reject TLS server certificates valid for more than 825 days, even when
/// the user trusts them (<https://support.apple.com/en-us/103769>).
const VALIDITY: Duration = Duration::from_secs(825 * 24 * 60 * 60);

/// Where a data directory keeps its TLS certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `DATA_DIR/tls/cert.pem`: the certificate chain, PEM; give it to clients to trust.
    pub cert: PathBuf,
    /// `DATA_DIR/tls/key.pem`: the private key, PEM, mode 0600.
    pub key: PathBuf,
}

impl TlsFiles {
    #[must_use]
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// Writes a new self-signed certificate and its key into `DATA_DIR/tls/`, valid for
/// `localhost`, `127.0.0.1`, `::1` and `extra_sans` (DNS names or IP addresses). Replaces
/// any certificate already there.
pub fn write_tls_certificate(
    data_dir: &Path,
    extra_sans: &[String],
) -> Result<TlsFiles, ServerError> {
    let files = TlsFiles::in_data_dir(data_dir);
    let failed = |reason: String| ServerError::TlsCertificate {
        path: files.cert.clone(),
        reason,
    };

    let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| (*s).to_owned()).collect();
    for san in extra_sans {
        if !sans.contains(san) {
            sans.push(san.clone());
        }
    }
    let mut params =
        CertificateParams::new(sans).map_err(|e| failed(format!("invalid name: {e}")))?;
    params.distinguished_name.push(DnType::CommonName, "coffer");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Backdated a day so a client whose clock is a little behind still accepts it.
    let not_before = now.saturating_sub(Duration::from_secs(24 * 60 * 60));
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + not_before;
    params.not_after = params.not_before + VALIDITY;

    let key = KeyPair::generate().map_err(|e| failed(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed(e.to_string()))?;

    let tls_dir = files.cert.parent().unwrap_or(data_dir);
    create_private_dir(tls_dir).map_err(|e| failed(e.to_string()))?;
    write_file(&files.key, key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| failed(e.to_string()))?;
    write_file(&files.cert, cert.pem().as_bytes(), 0o644).map_err(|e| failed(e.to_string()))?;
    Ok(files)
}

/// Creates `dir` (0700), or tightens it to 0700 if it exists.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Writes `contents` to `path` with `mode`, also when the file exists with a looser mode: the
/// mode is set before any byte is written.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents)?;
    file.sync_all()
}

/// The rustls server configuration for the certificate and key in `data_dir`, offering h2
/// and HTTP/1.1 by ALPN.
pub(crate) fn load_server_config(
    data_dir: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let files = TlsFiles::in_data_dir(data_dir);
    let unusable = |path: &Path, reason: String| ServerError::TlsFiles {
        path: path.to_path_buf(),
        reason,
    };

    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unusable(&files.cert, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(unusable(
            &files.cert,
            "no certificate in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| unusable(&files.key, pem_reason(&e)))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            unusable(
                &files.key,
                format!("does not match the certificate or is not usable: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_reason(error: &rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "file not found".to_owned()
        }
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PEM item of the expected kind in the file".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn client_trusting(cert_pem: &Path) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// Handshakes over an in-memory pipe, verifying the server as `name`.
    async fn handshake(data_dir: &Path, name: &str) -> Result<(), String> {
        let acceptor = tokio_rustls::TlsAcceptor::from(load_server_config(data_dir).unwrap());
        let connector = client_trusting(&TlsFiles::in_data_dir(data_dir).cert);
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let mut stream = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            stream
                .read_exact(&mut buf)
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(&buf).await.map_err(|e| e.to_string())?;
            stream.shutdown().await.map_err(|e| e.to_string())
        });
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut stream = connector
            .connect(server_name, client_io)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        server.await.unwrap()
    }

    #[tokio::test]
    async fn certificate_is_trusted_for_its_names_only() {
        let dir = tempfile::tempdir().unwrap();
        write_tls_certificate(
            dir.path(),
            &["coffer.internal".to_owned(), "10.0.0.7".to_owned()],
        )
        .unwrap();
        for name in [
            "localhost",
            "127.0.0.1",
            "::1",
            "coffer.internal",
            "10.0.0.7",
        ] {
            handshake(dir.path(), name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in ["example.com", "10.0.0.8"] {
            assert!(
                handshake(dir.path(), name).await.is_err(),
                "{name} must not verify"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles::in_data_dir(dir.path());
        // A pre-existing world-readable key file is tightened, not reused as is.
        std::fs::create_dir_all(files.key.parent().unwrap()).unwrap();
        std::fs::write(&files.key, b"old").unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_tls_certificate(dir.path(), &[]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(files.key.parent().unwrap()), 0o700);
        assert!(
            std::fs::read_to_string(&files.key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_server_config(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("cert.pem") && err.contains("file not found"),
            "{err}"
        );
    }

    #[test]
    fn a_mismatched_key_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files_a = write_tls_certificate(a.path(), &[]).unwrap();
        let files_b = write_tls_certificate(b.path(), &[]).unwrap();
        std::fs::copy(&files_b.key, &files_a.key).unwrap();
        let err = load_server_config(a.path()).unwrap_err().to_string();
        assert!(err.contains("key.pem"), "{err}");
    }
}
