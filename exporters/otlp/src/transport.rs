//! The two OTLP transports: gRPC (tonic, the client generated in
//! `opentelemetry-proto`) and HTTP/1.1 with protobuf bodies (hyper). Both do
//! TLS with rustls (ring) over the system's roots plus any extra CA, and
//! send the configured headers without ever printing them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message as _;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::config::Signal;
use crate::{Compression, Error, Protocol};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub(crate) enum Transport {
    Grpc {
        metrics: MetricsServiceClient<Channel>,
        logs: LogsServiceClient<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: Client<Https, Full<Bytes>>,
        url: http::Uri,
        headers: http::HeaderMap,
        gzip: bool,
    },
}

impl Transport {
    /// Builds one signal's transport; must run inside a tokio runtime (the
    /// gRPC channel's worker is spawned on it). Connections are made lazily,
    /// so a collector that is down is a failed export later, not an error
    /// here.
    pub(crate) fn new(cfg: &Signal) -> Result<Self, Error> {
        match cfg.protocol {
            Protocol::Grpc => {
                let channel = |url: &http::Uri| -> Result<Channel, Error> {
                    let mut ep = Endpoint::from(url.clone())
                        .timeout(cfg.timeout)
                        .connect_timeout(cfg.timeout);
                    if url.scheme_str() == Some("https") {
                        let mut tls = ClientTlsConfig::new().with_native_roots();
                        if let Some(pem) = &cfg.ca_pem {
                            ca_certificates(pem)?;
                            tls = tls.ca_certificate(Certificate::from_pem(pem));
                        }
                        ep = ep.tls_config(tls).map_err(|e| {
                            Error::invalid("TLS", format!("for {url}: {}", source_chain(&e)))
                        })?;
                    }
                    Ok(ep.connect_lazy())
                };
                let channel = channel(&cfg.url)?;
                let mut metadata = MetadataMap::new();
                for (k, v) in &cfg.headers {
                    let key = MetadataKey::from_bytes(k.as_bytes()).map_err(|_| {
                        Error::invalid("headers", format!("{k:?} is not valid in gRPC metadata"))
                    })?;
                    let mut val = MetadataValue::try_from(v.as_str()).map_err(|_| {
                        Error::invalid(
                            "headers",
                            format!("the value of {k:?} is not valid in gRPC metadata"),
                        )
                    })?;
                    // Kept out of any Debug output of hyper, h2 or tonic.
                    val.set_sensitive(true);
                    metadata.insert(key, val);
                }
                let mut metrics = MetricsServiceClient::new(channel.clone());
                let mut logs = LogsServiceClient::new(channel);
                if cfg.compression == Compression::Gzip {
                    use tonic::codec::CompressionEncoding::Gzip;
                    metrics = metrics.send_compressed(Gzip).accept_compressed(Gzip);
                    logs = logs.send_compressed(Gzip).accept_compressed(Gzip);
                }
                Ok(Self::Grpc {
                    metrics,
                    logs,
                    metadata,
                })
            }
            Protocol::HttpProtobuf => {
                let mut roots = rustls::RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if let Some(pem) = &cfg.ca_pem {
                    for cert in ca_certificates(pem)? {
                        roots.add(cert).map_err(|e| {
                            Error::invalid("CA certificate", format!("rejected: {e}"))
                        })?;
                    }
                }
                let tls = rustls::ClientConfig::builder_with_provider(
                    rustls::crypto::ring::default_provider().into(),
                )
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::invalid("TLS", e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(Some(cfg.timeout));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector);
                let mut headers = http::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                        Error::invalid("headers", format!("{k:?} is not a header name"))
                    })?;
                    let mut value = http::HeaderValue::from_str(v).map_err(|_| {
                        Error::invalid(
                            "headers",
                            format!("the value of {k:?} is not a header value"),
                        )
                    })?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                if cfg.compression == Compression::Gzip {
                    headers.insert(
                        http::header::CONTENT_ENCODING,
                        http::HeaderValue::from_static("gzip"),
                    );
                }
                Ok(Self::Http {
                    client,
                    url: cfg.url.clone(),
                    headers,
                    gzip: cfg.compression == Compression::Gzip,
                })
            }
        }
    }

    pub(crate) async fn send_metrics(
        &mut self,
        req: ExportMetricsServiceRequest,
    ) -> Result<(), String> {
        match self {
            Self::Grpc {
                metrics, metadata, ..
            } => {
                let mut request = tonic::Request::new(req);
                *request.metadata_mut() = metadata.clone();
                metrics
                    .export(request)
                    .await
                    .map(drop)
                    .map_err(|s| grpc_error(&s))
            }
            Self::Http {
                client,
                url,
                headers,
                gzip,
            } => post(client, url, headers, body(req.encode_to_vec(), *gzip)?).await,
        }
    }

    pub(crate) async fn send_logs(&mut self, req: ExportLogsServiceRequest) -> Result<(), String> {
        match self {
            Self::Grpc { logs, metadata, .. } => {
                let mut request = tonic::Request::new(req);
                *request.metadata_mut() = metadata.clone();
                logs.export(request)
                    .await
                    .map(drop)
                    .map_err(|s| grpc_error(&s))
            }
            Self::Http {
                client,
                url,
                headers,
                gzip,
            } => post(client, url, headers, body(req.encode_to_vec(), *gzip)?).await,
        }
    }
}

/// The certificates of a PEM bundle; an error if there is none or one is
/// malformed.
pub(crate) fn ca_certificates(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid("CA certificate", format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid(
            "CA certificate",
            "no certificate found in the PEM",
        ));
    }
    Ok(certs)
}

/// The request body, gzipped when asked.
fn body(protobuf: Vec<u8>, gzip: bool) -> Result<Vec<u8>, String> {
    if !gzip {
        return Ok(protobuf);
    }
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(protobuf.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(&protobuf)
        .and_then(|()| encoder.finish())
        .map_err(|e| format!("gzip: {e}"))
}

fn grpc_error(status: &tonic::Status) -> String {
    // The status message and its causes, never the request metadata.
    let mut out = format!("gRPC {:?}: {}", status.code(), status.message());
    if let Some(cause) = std::error::Error::source(status) {
        let chain = source_chain(cause);
        if !out.contains(&chain) {
            out.push_str(": ");
            out.push_str(&chain);
        }
    }
    out
}

/// An error and its causes on one line ("connection refused" is usually a
/// few levels down).
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let s = cause.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = cause.source();
    }
    out
}

async fn post(
    client: &Client<Https, Full<Bytes>>,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    request.headers_mut().extend(headers.clone());
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("POST {uri}: {}", source_chain(&e)))?;
    let status = response.status();
    // Read the body so the connection can be reused; keep a little of it
    // for the error message.
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(format!("POST {uri}: HTTP {status}: {text}"))
    }
}
