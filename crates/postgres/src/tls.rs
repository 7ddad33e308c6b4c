//! TLS for connections to PostgreSQL, with libpq's `sslmode` meanings.
//!
//! The connection string's `sslmode` and `sslrootcert` (or `PGSSLMODE` and
//! `PGSSLROOTCERT`) are read here, since the driver knows only some of
//! them. `disable` never uses TLS; `allow` and `prefer` use it when the
//! server offers it; `require` insists on it; none of these check the
//! server's certificate unless a root certificate is given, in which case
//! `require` checks it as `verify-ca` does (as libpq does). `verify-ca`
//! checks that the certificate chains to the root certificate;
//! `verify-full` also checks that it names the host. The root certificate
//! defaults to `~/.postgresql/root.crt`; `sslrootcert=system` uses the
//! operating system's trusted roots. A client certificate (`sslcert` and
//! `sslkey`, or `PGSSLCERT` and `PGSSLKEY`, defaulting to
//! `~/.postgresql/postgresql.crt` and `.key` when both exist) is presented
//! to servers that ask for one (`hostssl … cert` in `pg_hba.conf`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{PgError, Result};

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server insists (treated like `prefer`).
    Allow,
    /// TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS always; the certificate is checked only against a given root.
    Require,
    /// TLS always; the certificate must chain to the root certificate.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::Invalid(format!(
                    "invalid connection string: sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The driver's mode: whether TLS is skipped, tried or required.
    pub fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as D;
        match self {
            SslMode::Disable => D::Disable,
            SslMode::Allow | SslMode::Prefer => D::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => D::Require,
        }
    }
}

/// TLS settings of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub root_cert: Option<String>,
    /// `sslcert`: the client certificate (PEM), if one was given.
    pub client_cert: Option<String>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub client_key: Option<String>,
}

impl TlsSettings {
    /// The root certificate file the settings imply, if any.
    fn root_path(&self) -> Option<PathBuf> {
        match &self.root_cert {
            Some(p) => Some(PathBuf::from(p)),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                .filter(|p| p.exists()),
        }
    }

    /// The client certificate and key files, if any: those given, else
    /// `~/.postgresql/postgresql.crt` and `.key` when both exist.
    fn client_paths(&self) -> Result<Option<(PathBuf, PathBuf)>> {
        let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => Ok(Some((PathBuf::from(c), PathBuf::from(k)))),
            (Some(c), None) => match home()
                .map(|d| d.join("postgresql.key"))
                .filter(|k| k.exists())
            {
                Some(k) => Ok(Some((PathBuf::from(c), k))),
                None => Err(PgError::Setup(format!(
                    "sslcert={c} needs its private key: give sslkey=FILE (or PGSSLKEY)"
                ))),
            },
            (None, Some(_)) => Err(PgError::Setup(
                "sslkey is given without sslcert: give the client certificate too".into(),
            )),
            (None, None) => Ok(home().and_then(|d| {
                let (c, k) = (d.join("postgresql.crt"), d.join("postgresql.key"));
                (c.exists() && k.exists()).then_some((c, k))
            })),
        }
    }

    /// The rustls configuration for these settings.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = match (self.mode, self.root_path()) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(PgError::Setup(format!(
                    "sslmode={} needs a root certificate: give sslrootcert=FILE (or sslrootcert=system), or put it in ~/.postgresql/root.crt",
                    self.mode.as_str()
                )));
            }
            (SslMode::Allow | SslMode::Prefer | SslMode::Disable, _) | (_, None) => None,
            (_, Some(path)) => Some(load_roots(&path)?),
        };
        let inner = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| {
                        PgError::Setup(format!("cannot use the root certificates: {e}"))
                    })?,
            ),
            None => None,
        };
        let verifier = Verifier {
            inner,
            check_name: self.mode == SslMode::VerifyFull,
            provider: provider.clone(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::Setup(format!("TLS set-up failed: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        match self.client_paths()? {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key_file)) => {
                let (chain, key) = load_client_identity(&cert, &key_file)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    PgError::Setup(format!(
                        "cannot use the client certificate {} with key {}: {e}",
                        cert.display(),
                        key_file.display()
                    ))
                })
            }
        }
    }
}

/// Reads a client certificate chain and its private key (PEM).
fn load_client_identity(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| PgError::Setup(format!("cannot read sslcert {}: {e}", cert.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PgError::Setup(format!("sslcert {} is not PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(PgError::Setup(format!(
            "sslcert {} holds no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        PgError::Setup(format!(
            "cannot read the private key sslkey {}: {e}",
            key.display()
        ))
    })?;
    Ok((chain, key))
}

fn load_roots(path: &std::path::Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if path == std::path::Path::new("system") {
        let found = rustls_native_certs::load_native_certs();
        for c in found.certs {
            let _ = roots.add(c);
        }
    } else {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
            PgError::Setup(format!("cannot read sslrootcert {}: {e}", path.display()))
        })?;
        for c in certs {
            let c = c.map_err(|e| {
                PgError::Setup(format!("sslrootcert {} is not PEM: {e}", path.display()))
            })?;
            roots
                .add(c)
                .map_err(|e| PgError::Setup(format!("sslrootcert {}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(PgError::Setup(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// Checks the server certificate as the mode says: not at all, the chain
/// only, or the chain and the name.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Splits libpq's TLS options off a connection string (key=value or URL),
/// returning the rest for the driver and the settings (falling back to
/// `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`).
pub fn split_tls_options(conninfo: &str) -> Result<(String, TlsSettings)> {
    let mut mode = None;
    let mut root = None;
    let mut cert = None;
    let mut client_key = None;
    let rest = if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        match conninfo.split_once('?') {
            None => conninfo.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match k {
                        "sslmode" => mode = Some(percent_decode(v)),
                        "sslrootcert" => root = Some(percent_decode(v)),
                        "sslcert" => cert = Some(percent_decode(v)),
                        "sslkey" => client_key = Some(percent_decode(v)),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_values(conninfo)? {
            match key.as_str() {
                "sslmode" => mode = Some(value),
                "sslrootcert" => root = Some(value),
                "sslcert" => cert = Some(value),
                "sslkey" => client_key = Some(value),
                _ => kept.push(raw),
            }
        }
        kept.join(" ")
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mode = match mode.or_else(|| env("PGSSLMODE")) {
        Some(m) => SslMode::parse(&m)?,
        None => SslMode::default(),
    };
    Ok((
        rest,
        TlsSettings {
            mode,
            root_cert: root.or_else(|| env("PGSSLROOTCERT")),
            client_cert: cert.or_else(|| env("PGSSLCERT")),
            client_key: client_key.or_else(|| env("PGSSLKEY")),
        },
    ))
}

/// Decodes a URL query value: `%XX` escapes (invalid ones are kept as
/// written) and bytes that are not UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `key = value` pairs of a libpq connection string, with each pair's
/// original text. Values may be single-quoted with backslash escapes.
pub(crate) fn key_values(s: &str) -> Result<Vec<(String, String, String)>> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let bad = |why: &str| PgError::Invalid(format!("invalid connection string: {why}"));
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(bad(&format!("missing \"=\" after {key:?}")));
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted value")),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        if let Some(c) = chars.get(i + 1) {
                            value.push(*c);
                        }
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        out.push((key, value, chars[start..i].iter().collect()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_key_value_strings() {
        let (rest, t) = split_tls_options(
            "host=db.example.com sslmode=verify-full password='a b\\'c' sslrootcert = '/etc/ca.pem' dbname=app",
        )
        .unwrap_or_default();
        assert_eq!(rest, "host=db.example.com password='a b\\'c' dbname=app");
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
        assert!(split_tls_options("host").is_err());
        assert!(split_tls_options("sslmode=sometimes").is_err());
    }

    #[test]
    fn splits_urls() {
        let (rest, t) = split_tls_options(
            "postgresql://u:p@h:5432/app?sslmode=require&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap_or_default();
        assert_eq!(rest, "postgresql://u:p@h:5432/app?connect_timeout=5");
        assert_eq!(t.mode, SslMode::Require);
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, _) = split_tls_options("postgres://h/app?sslmode=disable").unwrap_or_default();
        assert_eq!(rest, "postgres://h/app");
    }

    #[test]
    fn verify_modes_need_a_root() {
        let t = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(t.client_config().is_err());
        let t = TlsSettings {
            mode: SslMode::Require,
            root_cert: None,
            ..TlsSettings::default()
        };
        assert!(t.client_config().is_ok());
    }

    #[test]
    fn bad_percent_escapes_are_kept_not_panicked_on() {
        let (rest, t) = split_tls_options(
            "postgresql://u@127.0.0.1:1/db?sslrootcert=%a\u{e9}x&sslmode=require",
        )
        .unwrap_or_default();
        assert_eq!(rest, "postgresql://u@127.0.0.1:1/db");
        assert_eq!(t.root_cert.as_deref(), Some("%a\u{e9}x"));
        assert_eq!(t.mode, SslMode::Require);
    }

    proptest::proptest! {
        #[test]
        fn no_connection_string_panics(s in "\\PC*") {
            let _ = split_tls_options(&s);
            let _ = crate::sql::config(Some(&s), None);
            let _ = crate::sql::has_password(&s);
        }

        #[test]
        fn no_url_query_panics(q in "[%a-fA-F0-9=&\u{e9}\u{1F600}]{0,24}") {
            let url = format!("postgresql://u@h/db?{q}");
            let _ = split_tls_options(&url);
            let _ = crate::sql::config(Some(&url), None);
        }
    }
}
