//! The live side: one request over a fresh connection, within the grant's limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::allow::{self, Entry};
use crate::credentials::{self, Credential};
use crate::{FetchError, Request, Response};
use theater_wasm::{Secret, Secrets};

/// The headers a guest may not set: the host's, from the URL and the body (a guest's `host`
/// could reach a virtual host the allow list never granted).
pub(crate) const HOST_HEADERS: [HeaderName; 4] = [
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
];

/// What a grant allows: hosts, time and size; whom it trusts over TLS; the credentials it
/// attaches and the secrets they name.
#[derive(Clone)]
pub(crate) struct Limits {
    pub(crate) allow: Vec<Entry>,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: u64,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) credentials: Vec<Credential>,
    pub(crate) secrets: Secrets,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A TLS client trusting Mozilla's roots (compiled in: the same on every machine) and
/// `extra` (a manifest's `ca_file`).
pub(crate) fn tls_config(
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate of ca_file is not usable: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Where `url` points: the URI, host and port, and whether it is over TLS.
pub(crate) fn target(url: &str) -> Result<(Uri, String, u16, bool), FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::Invalid(format!("{url:?} is not a URL: {e}")))?;
    let (port, tls) = match uri.scheme_str() {
        Some("http") => (uri.port_u16().unwrap_or(80), false),
        Some("https") => (uri.port_u16().unwrap_or(443), true),
        _ => {
            return Err(FetchError::Invalid(format!(
                "{url:?} must start with http:// or https://"
            )));
        }
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(FetchError::Invalid(format!(
            "{url:?} carries credentials: send them in a header instead"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| FetchError::Invalid(format!("{url:?} names no host")))?
        .to_string();
    Ok((uri, host, port, tls))
}

/// Sends `request` if `limits` allow its host, with the credentials that apply to it, and
/// reads the whole response. The secrets read for the credentials are pushed to `used`.
pub(crate) async fn fetch(
    limits: &Limits,
    request: &Request,
    used: &mut Vec<Secret>,
) -> Result<Response, FetchError> {
    let (uri, host, port, tls) = target(&request.url)?;
    if !allow::allowed(&limits.allow, &host, port) {
        let local = if allow::is_internal_name(&host) {
            " (a loopback or private host must be named exactly)"
        } else {
            ""
        };
        return Err(FetchError::Refused(format!(
            "{host}:{port} is not granted by [interfaces.http-client] allow{local}"
        )));
    }
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| FetchError::Invalid(format!("{:?} is not a method", request.method)))?;
    // The guest's headers are checked against the credentials before any secret is read.
    credentials::check_headers(&limits.credentials, &host, port, &request.headers)?;
    let extra = credentials::attach(&limits.credentials, &limits.secrets, &host, port, tls, used)?;
    let timeout = limits.timeout;
    let exchange = async {
        let stream = connect(limits, &host, port).await?;
        if !tls && !extra.is_empty() {
            // In the clear only to this machine or a private network: judged by the address
            // reached, not the name.
            let peer = stream
                .peer_addr()
                .map_err(|e| FetchError::Unreachable(format!("{host}:{port}: {e}")))?;
            if !allow::is_internal_ip(peer.ip()) {
                return Err(FetchError::Refused(format!(
                    "{host} resolves to a public address ({}): a credential goes there over https only",
                    peer.ip()
                )));
            }
        }
        if !tls {
            return exchange(limits, stream, request, &extra, method, uri, &host, port).await;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|e| FetchError::Invalid(format!("{host:?} is not a TLS server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&limits.tls))
            .connect(name, stream)
            .await
            .map_err(|e| FetchError::Unreachable(format!("{host}:{port}: TLS: {e}")))?;
        exchange(limits, stream, request, &extra, method, uri, &host, port).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(FetchError::Timeout(format!(
                "no complete response from {host}:{port} within {} ms",
                timeout.as_millis()
            )))
        })
}

/// A connection to `host`, refused if the name resolves to this machine without being
/// granted by that very name.
async fn connect(limits: &Limits, host: &str, port: u16) -> Result<TcpStream, FetchError> {
    let unreachable =
        |e: &dyn std::fmt::Display| FetchError::Unreachable(format!("{host}:{port}: {e}"));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| unreachable(&e))?
        .collect();
    // A name that resolves to this machine is reached only if granted by that very name.
    if !allow::named(&limits.allow, host, port)
        && addrs.iter().any(|a| allow::is_internal_ip(a.ip()))
    {
        return Err(FetchError::Refused(format!(
            "{host} resolves to a loopback or private address, which [interfaces.http-client] allow must name exactly"
        )));
    }
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(match last {
            Some(e) => unreachable(&e),
            None => unreachable(&"the name resolves to no address"),
        });
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One HTTP/1.1 exchange over `stream`, with the guest's headers and `extra` (credentials).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument a distinct part"
)]
async fn exchange<S>(
    limits: &Limits,
    stream: S,
    request: &Request,
    extra: &[(HeaderName, HeaderValue)],
    method: Method,
    uri: Uri,
    host: &str,
    port: u16,
) -> Result<Response, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let unreachable =
        |e: &dyn std::fmt::Display| FetchError::Unreachable(format!("{host}:{port}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("http-client connection: {e}");
        }
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::Invalid(format!("{name:?} is not a header name")))?;
        // The host, the framing and the connection are the host's: a guest's `host` could
        // reach a virtual host the allow list never granted.
        if HOST_HEADERS.contains(&name) {
            return Err(FetchError::Invalid(format!(
                "the {name} header is set by the host, from the URL and the body"
            )));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| FetchError::Invalid(format!("the value of header {name} is not valid")))?;
        builder = builder.header(name, value);
    }
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let authority = if port == default {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    builder = builder.header(http::header::HOST, authority);
    for (name, value) in extra {
        builder = builder.header(name, value.clone());
    }
    if !extra.is_empty() {
        // The response must come back as sent, so that an echo of a credential is found and
        // redacted: no compression, the whole representation.
        builder = builder.header(http::header::ACCEPT_ENCODING, "identity");
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status().as_u16();
    if !extra.is_empty() {
        // An echo of the credential must be found to be redacted: a body the host cannot
        // read as sent (compressed, or a part) is refused.
        let encoded = response
            .headers()
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let partial = response.status() == http::StatusCode::PARTIAL_CONTENT
            || response.headers().contains_key(http::header::CONTENT_RANGE);
        if encoded || partial {
            return Err(FetchError::Refused(format!(
                "{host} answered a request that carried a credential with an encoded or partial body, which the host cannot check for an echo of it"
            )));
        }
    }
    let too_large = || {
        FetchError::TooLarge(format!(
            "the response body is over the {} bytes [interfaces.http-client] allows",
            limits.max_response_bytes
        ))
    };
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_response_bytes) {
        return Err(too_large());
    }
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = usize::try_from(limits.max_response_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
            } else {
                unreachable(&e)
            }
        })?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}
