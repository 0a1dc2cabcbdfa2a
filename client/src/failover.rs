//! One gRPC channel over the replicas of a control plane.
//!
//! Every replica serves the whole API (followers forward writes to the
//! leader), so a client needs any live one, not a particular one. Requests
//! go to the current replica; when one fails at the transport (the replica
//! is gone: connection refused, reset, no answer to the connect) the
//! channel moves on to the next, so the caller's retry (informers and the
//! agent's loops all retry) reaches a live replica. What k3s's agents do
//! with a local TCP balancer, done here in the channel itself.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::{
    body::Body,
    codegen::{Service, http},
    transport::{Channel, Error},
};

/// Channels to every replica; cheap to clone (clones share the current
/// choice).
#[derive(Clone, Debug)]
pub struct FailoverChannel {
    replicas: Arc<[Channel]>,
    current: Arc<AtomicUsize>,
}

impl FailoverChannel {
    /// Requests start at `replicas[current]`.
    ///
    /// # Panics
    /// When `replicas` is empty or `current` out of range.
    pub fn new(replicas: Vec<Channel>, current: usize) -> Self {
        assert!(current < replicas.len(), "no replica {current}");
        Self {
            replicas: replicas.into(),
            current: Arc::new(AtomicUsize::new(current)),
        }
    }

    /// The index of the replica requests go to now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }
}

impl Service<http::Request<Body>> for FailoverChannel {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the chosen replica's, known only at the call: each
        // call waits for its channel (a tonic channel is a buffer in front
        // of its connection, so a clone per call is what it is made for).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let index = self.current.load(Ordering::Relaxed);
        let mut channel = self.replicas[index].clone();
        let current = Arc::clone(&self.current);
        let count = self.replicas.len();
        Box::pin(async move {
            let result = match std::future::poll_fn(|cx| channel.poll_ready(cx)).await {
                Ok(()) => channel.call(request).await,
                Err(err) => Err(err),
            };
            if result.is_err() && count > 1 {
                // Only the first caller to see this replica fail moves
                // the choice on; concurrent failures do not skip a replica.
                let next = (index + 1) % count;
                if current
                    .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    tracing::info!(
                        replica = index,
                        next,
                        "API server unreachable; trying the next"
                    );
                }
            }
            result
        })
    }
}
