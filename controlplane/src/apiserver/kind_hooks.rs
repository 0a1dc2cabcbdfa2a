//! Which [`WriteHooks`] each kind runs: the one place that knows every
//! kind with hooks, so the hooks' trait (`hooks.rs`) and their
//! implementations (`allocation.rs`, `node_fields.rs`) need not know each
//! other.

use rudder_api::Kind;

use super::{allocation::ServiceAllocation, hooks::WriteHooks, node_fields::NodeOwnedFields};

/// The hooks of kinds that keep nothing but their object.
#[derive(Debug)]
struct ObjectOnly;

impl WriteHooks for ObjectOnly {}

/// The write hooks of `kind`.
pub fn hooks_for(kind: Kind) -> &'static dyn WriteHooks {
    match kind {
        Kind::Service => &ServiceAllocation,
        Kind::Node => &NodeOwnedFields,
        _ => &ObjectOnly,
    }
}
