//! [`ActorInterface`]: how the outside world (messages, HTTP, timers, ...) reaches an actor.

use async_trait::async_trait;
pub use tokio_util::sync::CancellationToken as Shutdown;

use crate::ActorHandle;

/// An interface that serves one actor: built from its config, then started with the
/// actor's handle and a shutdown signal. One actor can have several interfaces at once,
/// each with its own clone of the handle.
#[async_trait]
pub trait ActorInterface: Send + Sized + 'static {
    /// What the manifest grants this interface (address, limits, ...).
    type Config: Send + 'static;

    /// Checks the config and prepares the interface; binds nothing yet.
    fn new(config: Self::Config) -> Result<Self, InterfaceError>;

    /// Serves `actor` until `shutdown` is cancelled (then finishes in-flight work and
    /// returns) or a fatal error.
    async fn start(self, actor: ActorHandle, shutdown: Shutdown) -> Result<(), InterfaceError>;
}

/// An interface could not be set up or failed while serving.
#[derive(Debug, thiserror::Error)]
#[error("{interface} interface: {message}")]
pub struct InterfaceError {
    /// Which interface (`http`, `message`, ...).
    pub interface: &'static str,
    /// What went wrong.
    pub message: String,
    /// The underlying error, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl InterfaceError {
    /// An error without an underlying cause.
    pub fn new(interface: &'static str, message: impl Into<String>) -> Self {
        InterfaceError {
            interface,
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`.
    pub fn with_source(
        interface: &'static str,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        InterfaceError {
            interface,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
