//! One listener for every API client: gRPC (rudderctl, the agents, the
//! controllers) and the Kubernetes REST API (kubectl, curl, client
//! libraries) on the same port, over the same TLS, as kube-apiserver serves
//! everything on one port. A request whose content-type is
//! `application/grpc...` goes to the gRPC services, anything else to the
//! REST router; the TLS handshake offers `h2` and `http/1.1`, so gRPC and
//! HTTP/2 REST clients share the protocol and HTTP/1.1 clients still work.
//!
//! The connection's [`TlsPeer`] is put in every request's extensions (and
//! as axum's `ConnectInfo`), which is where both the gRPC interceptor and
//! the REST middleware find the client certificate.

use std::{convert::Infallible, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::{Request, Response, body::Incoming, header::CONTENT_TYPE};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tonic::service::Routes;
use tower::ServiceExt;

use crate::auth::http::{TlsListener, TlsPeer};

/// How long open connections (watches, say) get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The services behind the port.
#[derive(Debug, Clone)]
pub struct ApiPort {
    /// The gRPC services, each behind its authentication interceptor.
    pub grpc: Routes,
    /// The REST router, with its authentication middleware when secured.
    pub rest: Router,
}

/// Where connections come from.
#[derive(Debug)]
pub enum Accept {
    /// TLS connections whose handshake completed.
    Tls(TlsListener),
    /// Plaintext (`--insecure-plaintext`, in-process test servers); gRPC
    /// then speaks HTTP/2 with prior knowledge, which hyper detects.
    Plain(TcpListener),
}

/// Whether a request is a gRPC call (`application/grpc`,
/// `application/grpc+proto`, ...).
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

impl ApiPort {
    /// Answers one request.
    async fn handle(
        self,
        peer: Option<TlsPeer>,
        mut request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer.clone()));
            request.extensions_mut().insert(peer);
        }
        if is_grpc(&request) {
            let response = self.grpc.oneshot(request).await?;
            Ok(response.map(Body::new))
        } else {
            self.rest.oneshot(request.map(Body::new)).await
        }
    }

    /// Serves connections from `accept` until `stop` turns true, then gives
    /// open connections [`DRAIN_TIMEOUT`] to finish.
    pub async fn serve(self, accept: Accept, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Watches and gRPC streams are long-lived; keep dead peers from
        // holding them forever.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let graceful = GracefulShutdown::new();
        let mut accept = accept;
        loop {
            tokio::select! {
                accepted = accept.next() => match accepted {
                    // hyper writes a response as several frames, each a
                    // write: over TLS each would become its own record and
                    // syscall, and the client would wake for each. Buffered
                    // until hyper flushes, a response leaves as one.
                    Connection::Tls(io, peer) => {
                        self.spawn(&builder, &graceful, tokio::io::BufWriter::new(io), Some(peer));
                    }
                    Connection::Plain(io) => self.spawn(&builder, &graceful, io, None),
                },
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        drop(accept);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!("API connections still open at shutdown; closing them");
        }
    }

    fn spawn<I>(
        &self,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &GracefulShutdown,
        io: I,
        peer: Option<TlsPeer>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let port = self.clone();
        let service =
            hyper::service::service_fn(move |request| port.clone().handle(peer.clone(), request));
        let connection = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "API connection ended with an error");
            }
        });
    }
}

/// An accepted connection.
enum Connection {
    // Boxed: a TLS stream carries its buffers inline, a TCP stream is small.
    Tls(
        Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        TlsPeer,
    ),
    Plain(tokio::net::TcpStream),
}

impl Accept {
    async fn next(&mut self) -> Connection {
        match self {
            Self::Tls(listener) => {
                let (io, peer) = axum::serve::Listener::accept(listener).await;
                Connection::Tls(Box::new(io), peer)
            }
            Self::Plain(listener) => {
                let (io, _) = axum::serve::Listener::accept(listener).await;
                let _ = io.set_nodelay(true);
                Connection::Plain(io)
            }
        }
    }
}
