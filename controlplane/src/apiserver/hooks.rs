//! Per-kind additions to the API server's writes. Generic create, update
//! and delete know nothing of any kind; a kind that keeps more than its
//! object in the store (a Service holds ClusterIP and NodePort keys,
//! [`super::allocation`]) implements [`WriteHooks`], and what its hooks
//! return joins the write's own transaction.

use futures::future::BoxFuture;
use rudder_api::{ApiError, FieldError, Kind};
use rudder_kvstore::{Compare, KeyValue, Op, Store, StoreError};
use serde_json::Value;

use super::ApiServerError;

/// What a write must add to its transaction.
#[derive(Debug, Default)]
pub struct Claim {
    /// Compares: newly claimed keys must not exist yet.
    pub compares: Vec<Compare>,
    /// Puts of new keys and deletes of released ones.
    pub ops: Vec<Op>,
    /// Keys the user asked for by value, with the field that named each (a
    /// collision on them is the user's error, not a reason to pick again).
    pub(super) requested: Vec<(String, String)>,
}

impl Claim {
    /// Whether the claim takes part in the transaction at all.
    pub fn is_empty(&self) -> bool {
        self.compares.is_empty() && self.ops.is_empty()
    }

    /// After a failed transaction: the error to report if a value the user
    /// asked for is taken (otherwise the caller picks again).
    ///
    /// # Errors
    /// Store errors.
    pub async fn requested_conflict(
        &self,
        store: &Store,
        kind: Kind,
        name: &str,
    ) -> Result<Option<ApiServerError>, StoreError> {
        for (key, field) in &self.requested {
            if store.get(key.as_str()).await?.is_some() {
                let value = key.rsplit('/').next().unwrap_or_default();
                return Ok(Some(ApiServerError::Invalid(ApiError::Invalid {
                    kind: kind.name().to_owned(),
                    name: name.to_owned(),
                    errors: vec![FieldError {
                        field: field.clone(),
                        message: format!("{value} is already allocated"),
                    }],
                })));
            }
        }
        Ok(None)
    }
}

/// Hooks a kind runs inside the API server's generic writes. Each default
/// adds nothing.
pub trait WriteHooks: Send + Sync {
    /// Before a create: may fill in `object` and returns what the create's
    /// transaction must also check and do.
    ///
    /// # Errors
    /// An [`ApiServerError`] that rejects the create.
    fn before_create<'a>(
        &'a self,
        store: &'a Store,
        object: &'a mut Value,
    ) -> BoxFuture<'a, Result<Claim, ApiServerError>> {
        let _ = (store, object);
        Box::pin(async { Ok(Claim::default()) })
    }

    /// Before an update of more than the status: may fill in `next` from
    /// `current` (the stored version) and returns what the update's
    /// transaction must also check and do.
    ///
    /// # Errors
    /// An [`ApiServerError`] that rejects the update.
    fn before_update<'a>(
        &'a self,
        store: &'a Store,
        next: &'a mut Value,
        current: &'a Value,
    ) -> BoxFuture<'a, Result<Claim, ApiServerError>> {
        let _ = (store, next, current);
        Box::pin(async { Ok(Claim::default()) })
    }

    /// Before a delete of `current` (as stored): what the delete's
    /// transaction must also do.
    ///
    /// # Errors
    /// An [`ApiServerError`] that rejects the delete.
    fn before_delete(&self, current: &KeyValue) -> Result<Vec<Op>, ApiServerError> {
        let _ = current;
        Ok(Vec::new())
    }
}
