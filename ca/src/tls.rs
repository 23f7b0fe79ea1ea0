//! The API's TLS certificate: a self-signed one made at `init`, or the
//! operator's own (point `server.tls_cert`/`tls_key` at it).

use std::path::Path;

use crate::keys::{self, write_new};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot generate the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Write(#[from] keys::Error),
}

/// Writes `tls/cert.pem` and `tls/key.pem` (0600) under `data_dir`, valid for
/// `localhost`, `127.0.0.1`, `::1` and `extra_names`. Refuses to overwrite.
pub(crate) fn create_self_signed(data_dir: &Path, extra_names: &[String]) -> Result<(), Error> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|source| keys::Error::Write {
        path: dir.clone(),
        source,
    })?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key_pem = zeroize::Zeroizing::new(certified.key_pair.serialize_pem());
    write_new(&dir.join("key.pem"), key_pem.as_bytes(), 0o600)?;
    write_new(
        &dir.join("cert.pem"),
        certified.cert.pem().as_bytes(),
        0o644,
    )?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("{path}: cannot read PEM: {message}")]
    Pem {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("the TLS certificate and key do not go together: {0}")]
    Config(#[from] rustls::Error),
}

/// The API's rustls configuration: the certificate chain and key from PEM
/// files, HTTP/1.1 only. (HTTP/2 is not offered: a certificate request is one
/// small request, and the HTTP/1 header-read timeout is what protects the CA
/// from clients that connect and then send nothing.)
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<std::sync::Arc<rustls::ServerConfig>, LoadError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| LoadError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}
