//! The live side: one request over a fresh connection, within the grant's limits.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::allow::{self, Entry};
use crate::{FetchError, Request, Response};

/// What a grant allows: hosts, time and size.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) allow: Vec<Entry>,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: u64,
}

/// Where `url` points: scheme, host and port.
pub(crate) fn target(url: &str) -> Result<(Uri, String, u16), FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::Invalid(format!("{url:?} is not a URL: {e}")))?;
    let port = match uri.scheme_str() {
        Some("http") => uri.port_u16().unwrap_or(80),
        Some("https") => {
            return Err(FetchError::Invalid(
                "https is not supported yet: this host speaks plain http only".into(),
            ));
        }
        _ => {
            return Err(FetchError::Invalid(format!(
                "{url:?} must start with http://"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| FetchError::Invalid(format!("{url:?} names no host")))?
        .to_string();
    Ok((uri, host, port))
}

/// Sends `request` if `limits` allow its host, and reads the whole response.
pub(crate) async fn fetch(limits: &Limits, request: &Request) -> Result<Response, FetchError> {
    let (uri, host, port) = target(&request.url)?;
    if !allow::allowed(&limits.allow, &host, port) {
        let local = if allow::is_loopback_name(&host) {
            " (a loopback host must be named exactly)"
        } else {
            ""
        };
        return Err(FetchError::Refused(format!(
            "{host}:{port} is not granted by [interfaces.http-client] allow{local}"
        )));
    }
    let method = Method::from_bytes(request.method.as_bytes())
        .map_err(|_| FetchError::Invalid(format!("{:?} is not a method", request.method)))?;
    let timeout = limits.timeout;
    tokio::time::timeout(timeout, exchange(limits, request, method, uri, &host, port))
        .await
        .unwrap_or_else(|_| {
            Err(FetchError::Timeout(format!(
                "no complete response from {host}:{port} within {} ms",
                timeout.as_millis()
            )))
        })
}

async fn exchange(
    limits: &Limits,
    request: &Request,
    method: Method,
    uri: Uri,
    host: &str,
    port: u16,
) -> Result<Response, FetchError> {
    let unreachable =
        |e: &dyn std::fmt::Display| FetchError::Unreachable(format!("{host}:{port}: {e}"));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| unreachable(&e))?
        .collect();
    // A name that resolves to this machine is reached only if granted by that very name.
    if !allow::named(&limits.allow, host) && addrs.iter().any(|a| allow::is_local_ip(a.ip())) {
        return Err(FetchError::Refused(format!(
            "{host} resolves to a loopback address, which [interfaces.http-client] allow must name exactly"
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
    let mut has_host = false;
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::Invalid(format!("{name:?} is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| FetchError::Invalid(format!("the value of header {name} is not valid")))?;
        has_host |= name == http::header::HOST;
        builder = builder.header(name, value);
    }
    if !has_host {
        let authority = uri.authority().map_or(host, |a| a.as_str());
        builder = builder.header(http::header::HOST, authority);
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| FetchError::Invalid(e.to_string()))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status().as_u16();
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
