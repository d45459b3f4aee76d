//! TLS for `rtmps://` and `whip+https://`: rustls on aws-lc-rs (the crypto
//! the daemon already links for WebRTC's certificate). Servers are checked
//! against Mozilla's roots, built in (`webpki-roots`: the image has no CA
//! bundle, and a camera's trust should not change with an OS package),
//! plus the target's own `tls_ca` file when it has one (a private CA or a
//! self-signed server): added to the roots, never a switch that turns the
//! check off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::PushError;

/// A byte stream to a server: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client configuration for one target (made per connection: the CA
/// file may have been replaced).
pub fn config(ca: Option<&Path>) -> Result<ClientConfig, PushError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let pem = std::fs::read(path)
            .map_err(|e| PushError::Tls(format!("tls_ca {}: {e}", path.display())))?;
        add_pem(&mut roots, &pem)
            .map_err(|e| PushError::Tls(format!("tls_ca {}: {e}", path.display())))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PushError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Adds the PEM certificates in `pem` to `roots`: how many, or what is wrong.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<usize, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    let n = certs.len();
    for c in certs {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Checks a CA given as PEM text (the admin API's `tls_ca`) before it is
/// stored: the certificates it holds, or a message for the user.
pub fn check_ca_pem(pem: &[u8]) -> Result<usize, String> {
    add_pem(&mut RootCertStore::empty(), pem)
}

/// TLS over `tcp` to `host` (its name is checked against the certificate;
/// an IP address against the certificate's IP entries).
pub async fn connect(
    tcp: TcpStream,
    host: &str,
    ca: Option<&Path>,
) -> Result<Box<dyn Io>, PushError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| PushError::Url(format!("{host:?} is not a host name for TLS")))?;
    let connector = TlsConnector::from(Arc::new(config(ca)?));
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| PushError::Tls(e.to_string()))?;
    Ok(Box::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roots_load_and_a_bad_ca_file_is_a_clear_error() {
        assert!(config(None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = config(Some(&empty)).err().unwrap().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = config(Some(&dir.path().join("missing.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        assert_eq!(
            check_ca_pem(b"not a certificate").unwrap_err(),
            "no PEM certificate in it"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(check_ca_pem(broken).is_err());
    }
}
