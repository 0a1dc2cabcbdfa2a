//! The HTTP API over TLS: a listener that does the TLS handshakes off the
//! accept loop (bounded in time and number, so slow clients cannot stall
//! it), and the middleware that authenticates every request but the
//! health checks.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, State, connect_info::Connected},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    serve::IncomingStream,
};
use rustls::pki_types::CertificateDer;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{Authenticator, UserInfo};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the backlog.
const MAX_HANDSHAKES: usize = 256;

/// A connection's peer: its address and the certificate chain it
/// presented (already verified against the cluster CA).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The remote address.
    pub addr: SocketAddr,
    /// The verified chain, leaf first, if the client sent one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Accepts TCP connections and hands out the ones whose TLS handshake
/// completed.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    ///
    /// # Errors
    /// When the listener has no local address.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %err, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let certs = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .map(|chain| Arc::new(chain.to_vec()));
                            let _ = done.send((stream, TlsPeer { addr, certs })).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%addr, error = %err, "HTTP TLS handshake refused");
                        }
                        Err(_) => tracing::debug!(%addr, "HTTP TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone (only when the listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            certs: None,
        })
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Middleware: authenticates the request (client certificate or bearer
/// token) and leaves its [`UserInfo`] in the extensions; `/healthz` and
/// `/readyz` are open to anyone, as kube-apiserver's are.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    ConnectInfo(peer): ConnectInfo<TlsPeer>,
    mut request: Request,
    next: Next,
) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    match authenticator.authenticate(peer.certs.as_deref().map(Vec::as_slice), header) {
        Ok(user) if user.in_group(super::bootstrap::BOOTSTRAPPERS_GROUP) => forbidden(&format!(
            "user {:?} holds a bootstrap token, which may only request a node certificate (over gRPC)",
            user.name
        )),
        Ok(user) => {
            request.extensions_mut().insert::<UserInfo>(user);
            next.run(request).await
        }
        Err(err) => unauthorized(&err.to_string()),
    }
}

/// A Kubernetes `Status` with code 401.
fn unauthorized(message: &str) -> Response {
    failure(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

/// A Kubernetes `Status` with code 403.
pub(crate) fn forbidden(message: &str) -> Response {
    failure(StatusCode::FORBIDDEN, "Forbidden", message)
}

fn failure(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, axum::Json(status)).into_response()
}
