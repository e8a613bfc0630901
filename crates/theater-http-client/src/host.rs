//! The wasm side: the `theater:actor/http-client` import.

use theater_wasm::bindings::theater::actor::http_client::{self as wit, Host};

use crate::{FetchError, HttpClientGrant, Request, calls};

theater_wasm::host_view!();

impl Host for View<'_> {
    async fn send(
        &mut self,
        request: wit::Request,
    ) -> wasmtime::Result<Result<wit::Response, wit::Error>> {
        let grant = self.0.grant::<HttpClientGrant>();
        let request = Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let r = calls::send(grant.as_deref(), self.0.calls(), request).await;
        Ok(self
            .0
            .record(r)?
            .map(|r| wit::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                FetchError::Refused(m) => wit::Error::Refused(m),
                FetchError::Invalid(m) => wit::Error::Invalid(m),
                FetchError::Unreachable(m) => wit::Error::Unreachable(m),
                FetchError::Timeout(m) => wit::Error::Timeout(m),
                FetchError::TooLarge(m) => wit::Error::TooLarge(m),
            }))
    }
}
