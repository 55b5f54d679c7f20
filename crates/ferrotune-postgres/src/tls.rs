//! TLS: plain connections always; rustls behind the `tls` feature, with libpq's `sslmode`
//! semantics.

use crate::url::SslMode;
use postgres::Client;

/// How connections are opened.
#[derive(Clone)]
pub(crate) enum Connector {
    /// No TLS support: `sslmode=prefer` falls back to plain connections.
    Plain,
    /// rustls.
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Connector {
    /// The connector for `mode`, or why TLS cannot be used as asked.
    pub(crate) fn new(
        mode: SslMode,
        root_cert: Option<&std::path::Path>,
    ) -> Result<Connector, String> {
        #[cfg(feature = "tls")]
        {
            if mode == SslMode::Disable {
                return Ok(Connector::Plain);
            }
            rustls_impl::connector(mode, root_cert).map(Connector::Rustls)
        }
        #[cfg(not(feature = "tls"))]
        {
            if mode == SslMode::Disable || (mode == SslMode::Prefer && root_cert.is_none()) {
                Ok(Connector::Plain)
            } else {
                Err(format!(
                    "sslmode={}{} needs TLS, but ferrotune-postgres was built without its `tls` \
                     feature: enable it (ferrotune-postgres = {{ features = [\"tls\"] }}) or use \
                     sslmode=disable",
                    mode.as_str(),
                    if root_cert.is_some() {
                        " with sslrootcert"
                    } else {
                        ""
                    }
                ))
            }
        }
    }

    pub(crate) fn connect(&self, config: &postgres::Config) -> Result<Client, postgres::Error> {
        match self {
            Connector::Plain => config.connect(postgres::NoTls),
            #[cfg(feature = "tls")]
            Connector::Rustls(c) => config.connect(c.clone()),
        }
    }
}

#[cfg(feature = "tls")]
mod rustls_impl {
    use super::SslMode;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{
        CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    };
    use std::path::Path;
    use std::sync::Arc;

    pub(super) fn connector(
        mode: SslMode,
        root_cert: Option<&Path>,
    ) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?;
        let mut roots = RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "sslrootcert {} holds no usable PEM certificate",
                        path.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = || {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .build()
                .map_err(|e| format!("TLS set-up failed: {e}"))
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
            // libpq: prefer and require encrypt without checking the certificate, unless a
            // root certificate is given (then require checks the chain like verify-ca).
            (SslMode::Prefer, _) | (SslMode::Require, None) => Arc::new(NoCheck(provider.clone())),
            (SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => Arc::new(ChainOnly(webpki()?)),
            _ => webpki()?,
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// Accepts any certificate but still checks the handshake's signatures (libpq's
    /// `sslmode=require`: encryption against passive eavesdropping only).
    #[derive(Debug)]
    struct NoCheck(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoCheck {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// Checks the certificate chain but not the host name (libpq's `verify-ca`).
    #[derive(Debug)]
    struct ChainOnly(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}
