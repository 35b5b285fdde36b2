//! TLS for the admin HTTP and the partner link (rustls with the `aws-lc-rs` provider, named
//! explicitly everywhere so that no process-wide default is needed).
//!
//! - Admin HTTPS: [`load_certified_key`] reads `[admin] tls_cert` / `tls_key` (PEM) when the
//!   configuration is checked, so a missing, unreadable or invalid file, or a key that is not
//!   the certificate's, is a configuration problem before anything is bound. The listener
//!   ([`TlsListener`]) hands finished handshakes to `axum::serve`; the certificate comes from a
//!   [`CertSwitch`], which a reload replaces: new connections get the new one, open ones keep
//!   theirs.
//! - The partner link: [`client_config`] trusts the system's roots (the operating system's
//!   store, where a deployment's own CAs are installed) plus `[partner] ca`.
//! - Expiry: [`expiry_problem`] / [`warn_if_expiring`] say when a certificate (the admin's,
//!   the partner CAs) has expired or ends within [`EXPIRY_WARNING_DAYS`]: `hotlined check`,
//!   every start and reload, and once a day while the daemon runs.
//! - `hotlined reload` over HTTPS: [`reload_client_config`] accepts the certificate of the
//!   configured file itself (pinned: the exact certificate, whatever names it carries), or one
//!   that chains to it or to a system root for the address connected to.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The one crypto provider used.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why a certificate, key or CA file was not taken (the message a configuration problem
/// carries, after the file's key).
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not PEM: {why}")]
    NotPem { path: String, why: String },
    #[error("{path} has no {what} (a PEM block `-----BEGIN {what}-----`)")]
    Missing { path: String, what: &'static str },
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

fn read_file(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Every certificate in a PEM file, in order; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::NotPem {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Missing {
            path: path.display().to_string(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The certificate chain of `cert` (leaf first) with the private key of `key`, checked to
/// belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, PemError> {
    let chain = load_certs(cert)?;
    let bytes = read_file(key)?;
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::Missing {
            path: key.display().to_string(),
            what: "PRIVATE KEY",
        },
        e => PemError::NotPem {
            path: key.display().to_string(),
            why: e.to_string(),
        },
    })?;
    let certified = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("the key in {} is not the certificate's key", key.display())
            }
            e => e.to_string(),
        };
        PemError::Invalid {
            path: cert.display().to_string(),
            why,
        }
    })?;
    Ok(Arc::new(certified))
}

/// CA certificates to trust, each checked to be usable as a trust anchor.
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = load_certs(path)?;
    let mut store = RootCertStore::empty();
    for c in &certs {
        store.add(c.clone()).map_err(|e| PemError::Invalid {
            path: path.display().to_string(),
            why: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(certs)
}

/// The admin certificate new connections get; a reload replaces it.
#[derive(Debug)]
pub struct CertSwitch(RwLock<Arc<CertifiedKey>>);

impl CertSwitch {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertSwitch(RwLock::new(key)))
    }

    /// Serves `key` to every connection from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        match self.0.write() {
            Ok(mut k) => *k = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertSwitch {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The admin server's TLS settings: HTTP/1.1, the certificate of `certs`.
pub fn server_config(certs: Arc<CertSwitch>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_no_client_auth().with_cert_resolver(certs))
        .unwrap_or_else(|e| unreachable!("aws-lc-rs supports the default versions: {e}"));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TCP listener whose connections come out TLS-terminated: handshakes run in tasks of
/// their own (a slow client holds up no one) and are given [`HANDSHAKE_TIMEOUT`].
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, certs: Arc<CertSwitch>) -> Self {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(server_config(certs)),
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "admin HTTPS: handshake failed");
                                    None
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "admin HTTPS: handshake timed out");
                                    None
                                }
                            }
                        });
                    }
                    // out of descriptors and the like: let it pass rather than spin
                    Err(e) => {
                        tracing::warn!(error = %e, "admin HTTPS: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Roots of the operating system's store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured);
/// the ones that cannot be used are skipped with a warning.
fn system_roots(store: &mut RootCertStore) {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's CA certificates");
    }
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates");
}

/// The partner link's TLS settings: the system's roots and `extra_ca`.
pub fn client_config(extra_ca: &[CertificateDer<'static>]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    system_roots(&mut roots);
    let (_, _) = roots.add_parsable_certificates(extra_ca.iter().cloned());
    if roots.is_empty() {
        tracing::warn!("no CA certificates: an https:// partner cannot be verified; set partner.ca or install the system's CA certificates");
    }
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|e| unreachable!("aws-lc-rs supports the default versions: {e}"))
}

/// `hotlined reload`'s TLS settings for the daemon's admin address: see [`PinnedOrVerified`].
pub fn reload_client_config(configured: Vec<CertificateDer<'static>>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    system_roots(&mut roots);
    let _ = roots.add_parsable_certificates(configured.iter().cloned());
    let verifier: Arc<dyn ServerCertVerifier> =
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build() {
            Ok(webpki) => Arc::new(PinnedOrVerified {
                pinned: configured,
                webpki: Some(webpki),
            }),
            // no roots at all: the pinned certificate alone
            Err(_) => Arc::new(PinnedOrVerified {
                pinned: configured,
                webpki: None,
            }),
        };
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        })
        .unwrap_or_else(|e| unreachable!("aws-lc-rs supports the default versions: {e}"))
}

/// Accepts the server's certificate when it is exactly one of `pinned` (the certificates of
/// the configured file: the daemon proves it holds the key in the handshake), else when it
/// verifies against the roots for the name connected to. Handshake signatures are always
/// checked.
#[derive(Debug)]
struct PinnedOrVerified {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for PinnedOrVerified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(w) => {
                w.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// When `e` (or an error it wraps) is rustls refusing the peer's certificate, what rustls
/// said.
pub fn certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(
            r @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) = err.downcast_ref::<rustls::Error>()
        {
            return Some(r.to_string());
        }
        // an `io::Error` wrapping another error (hyper-rustls wraps tokio-rustls's, which
        // wraps rustls's) gives the wrapped one's *source* as its own: step into it instead
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// How far ahead the end of a certificate is warned about.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// When `cert` stops being valid (its `notAfter`); `None` when it cannot be read as X.509.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<DateTime<Utc>> {
    use x509_cert::der::Decode as _;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let end = c.tbs_certificate.validity.not_after.to_unix_duration();
    DateTime::from_timestamp(i64::try_from(end.as_secs()).ok()?, 0)
}

/// What an admin must hear at `now` about the certificate `cert` of `what` (a setting's
/// name): that it has expired, or that it expires within [`EXPIRY_WARNING_DAYS`] and when;
/// `None` when it has longer (or cannot be read).
pub fn expiry_problem(what: &str, cert: &CertificateDer<'_>, now: DateTime<Utc>) -> Option<String> {
    let end = not_after(cert)?;
    let when = end.format("%Y-%m-%d %H:%M UTC");
    if end <= now {
        return Some(format!(
            "{what}: the certificate expired on {when}; clients refuse it: replace it and reload"
        ));
    }
    let days = (end - now).num_days();
    (days < EXPIRY_WARNING_DAYS).then(|| {
        format!(
            "{what}: the certificate expires on {when}, in {days} days: \
             replace it and reload before then"
        )
    })
}

/// Logs [`expiry_problem`] for each of `certs` (the admin certificate's leaf, the partner
/// CAs), named `what`: a warning, or an error for one that has expired.
pub fn warn_if_expiring<'a>(what: &str, certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) {
    let now = Utc::now();
    for c in certs {
        let Some(problem) = expiry_problem(what, c, now) else {
            continue;
        };
        if not_after(c).is_some_and(|end| end <= now) {
            tracing::error!("{problem}");
        } else {
            tracing::warn!("{problem}");
        }
    }
}

/// Says [`warn_if_expiring`] of the admin certificate in use (a reload may replace it) and
/// of the partner CAs now and then once a day, until `stop`; `None` when there is neither.
pub fn spawn_expiry_watch(
    admin: Option<Arc<CertSwitch>>,
    partner_ca: Vec<CertificateDer<'static>>,
    stop: tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if admin.is_none() && partner_ca.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            if let Some(certs) = &admin {
                warn_if_expiring("admin.tls_cert", certs.current().cert.first());
            }
            warn_if_expiring("partner.ca", &partner_ca);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }))
}

/// The SHA-256 of a DER certificate, hex (what `openssl x509 -fingerprint -sha256` shows,
/// without the colons).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(cert.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_until(y: i32, m: u8, d: u8) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2026, 1, 1);
        p.not_after = rcgen::date_time_ymd(y, m, d);
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_near_its_end_is_said_and_one_far_from_it_is_not() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let soon = cert_until(2026, 12, 20);
        assert_eq!(
            not_after(&soon),
            Some(
                DateTime::parse_from_rfc3339("2026-12-20T00:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        let said = expiry_problem("admin.tls_cert", &soon, now).unwrap();
        assert!(
            said.starts_with(
                "admin.tls_cert: the certificate expires on 2026-12-20 00:00 UTC, in 13 days"
            ),
            "{said}"
        );
        let gone = expiry_problem("partner.ca", &cert_until(2026, 11, 1), now).unwrap();
        assert!(gone.contains("expired on 2026-11-01"), "{gone}");
        assert_eq!(
            expiry_problem("admin.tls_cert", &cert_until(2027, 6, 1), now),
            None
        );
        assert_eq!(not_after(&CertificateDer::from(vec![1, 2, 3])), None);
    }

    #[test]
    fn a_certificate_refusal_is_found_however_deeply_wrapped() {
        let refusal = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            refusal,
        ));
        assert_eq!(
            certificate_refusal(&wrapped).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let other =
            std::io::Error::other(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(certificate_refusal(&other), None);
        let handshake = std::io::Error::other(rustls::Error::HandshakeNotComplete);
        assert_eq!(certificate_refusal(&handshake), None);
    }
}
