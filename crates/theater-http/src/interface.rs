//! [`HttpInterface`]: the [`ActorInterface`] that serves one actor over HTTP.

use async_trait::async_trait;
use theater_core::{ActorHandle, ActorInterface, InterfaceError, Shutdown};

use crate::{HttpConfig, HttpServer};

/// Serves one actor at the address and prefix its manifest grants. To serve several actors
/// on one port, use [`HttpServer`] with several routes.
#[derive(Debug)]
pub struct HttpInterface {
    config: HttpConfig,
}

#[async_trait]
impl ActorInterface for HttpInterface {
    type Config = HttpConfig;

    fn new(config: HttpConfig) -> Result<Self, InterfaceError> {
        // Configs built by hand are checked too.
        crate::config::check_prefix(&config.prefix)?;
        Ok(HttpInterface { config })
    }

    async fn start(self, actor: ActorHandle, shutdown: Shutdown) -> Result<(), InterfaceError> {
        let prefix = self.config.prefix.clone();
        let server = HttpServer::bind(self.config).await?.route(&prefix, actor)?;
        tracing::info!(addr = ?server.local_addr().ok(), %prefix, "serving HTTP");
        server.serve(shutdown).await
    }
}
