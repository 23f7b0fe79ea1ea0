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
