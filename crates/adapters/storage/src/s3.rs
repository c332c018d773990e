//! The S3-compatible store: configuration, and an HTTP client on rustls with ring.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpClient, HttpConnector};
use object_store::{ClientOptions, RetryConfig};
use secrecy::{ExposeSecret, SecretString};

/// Where and how to reach an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, moto, …).
///
/// Owned by this adapter; the server's settings compose it from `TENANTRY_STORAGE_URL`,
/// `TENANTRY_S3_ENDPOINT` and the `AWS_*` variables.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket, which must exist (the adapter never creates buckets: that is an
    /// operator's decision, with its policies and lifecycle rules).
    pub bucket: String,
    /// The region requests are signed for (`us-east-1` for most self-hosted servers).
    pub region: String,
    /// The server's base URL (`http://127.0.0.1:9000`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Static credentials. Without them the usual `AWS_*` variables (and the other sources
    /// `object_store` knows: web identity, instance metadata) provide credentials.
    pub credentials: Option<S3Credentials>,
    /// Path-style requests (`{endpoint}/{bucket}/{key}`) instead of virtual-hosted ones
    /// (`{bucket}.{endpoint}/{key}`): what local and most self-hosted servers need.
    pub path_style: bool,
    /// Allow plain `http://` endpoints: only for a server on loopback or a trusted private
    /// network, since credentials and signed URLs would otherwise travel in clear.
    pub allow_http: bool,
    /// A folder inside the bucket under which every object lives (`tenantry/prod`), so one
    /// bucket can serve several deployments, or each test run its own prefix.
    pub prefix: Option<String>,
}

/// An access key pair (and optional session token).
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`; never printed.
    pub secret_access_key: SecretString,
    /// `AWS_SESSION_TOKEN`, for temporary credentials; never printed.
    pub session_token: Option<SecretString>,
}

/// How long a connection attempt may take: an unreachable store fails fast instead of holding
/// an upload (or the readiness probe) for the OS's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the store may stay silent while answering: no total timeout, which would cut off a
/// large download on a slow link.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl S3Config {
    pub(crate) fn builder(&self) -> AmazonS3Builder {
        let mut builder = match &self.credentials {
            Some(credentials) => {
                let mut builder = AmazonS3Builder::new()
                    .with_access_key_id(&credentials.access_key_id)
                    .with_secret_access_key(credentials.secret_access_key.expose_secret());
                if let Some(token) = &credentials.session_token {
                    builder = builder.with_token(token.expose_secret());
                }
                builder
            }
            None => AmazonS3Builder::from_env(),
        };
        builder = builder
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_allow_http(self.allow_http)
            .with_http_connector(RingConnector { allow_http: self.allow_http })
            // Few, quick retries: a request is bounded well under a minute, so an outage shows
            // as a failed upload (and a failed readiness probe) instead of a hung one.
            .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() });
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder
    }
}

/// Builds `object_store`'s HTTP client on reqwest with rustls, ring and the compiled-in Mozilla
/// roots: no aws-lc-rs (cmake) build, no process-wide crypto provider to install, and no
/// system trust store needed (the image may have none).
#[derive(Debug)]
struct RingConnector {
    allow_http: bool,
}

impl HttpConnector for RingConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let generic =
            |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic { store: "S3", source };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config().map_err(|e| generic(Box::new(e)))?)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .https_only(!self.allow_http)
            .http1_only()
            .build()
            .map_err(|e| generic(Box::new(e)))?;
        Ok(HttpClient::new(client))
    }
}

fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
