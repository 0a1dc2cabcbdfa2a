//! Who may do what: the authoriser chain every API request goes through
//! after authentication ([`crate::auth`]).
//!
//! 1. `system:masters` may do anything;
//! 2. [`node`]: node identities may do what their agent needs, then
//!    [`node_restriction`] checks the objects (their own Node and Lease,
//!    pods bound to them);
//! 3. [`rbac`]: Roles, ClusterRoles and their bindings, read from a
//!    watched in-memory [`view`]; what no binding allows is denied.
//!
//! Writes of RBAC objects are also checked for [`escalation`]; the
//! default policy is [`bootstrap`]; [`review`] answers
//! SelfSubjectAccessReviews (`kubectl auth can-i`). Requests are
//! described by their Kubernetes [`attributes`].

pub mod attributes;
pub mod bootstrap;
pub mod escalation;
pub mod node;
pub mod node_restriction;
pub mod rbac;
pub mod review;
pub mod view;

pub use attributes::{Attributes, ResourceAttributes, Target};
pub use view::RbacView;

use crate::auth::{MASTERS_GROUP, UserInfo};

/// What the chain decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with the reason the caller is told ("" when no rule allows
    /// it: the default deny).
    Deny(&'static str),
}

/// The authoriser chain.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    view: RbacView,
}

impl Authorizer {
    /// Decides with the RBAC objects of `view`.
    pub fn new(view: RbacView) -> Self {
        Self { view }
    }

    /// The RBAC view.
    pub fn view(&self) -> &RbacView {
        &self.view
    }

    /// Decides one request: masters, then the node authoriser, then RBAC.
    pub fn decide(&self, user: &UserInfo, attributes: &Attributes<'_>) -> Decision {
        if user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision::Allow;
        }
        if let Some(node) = node::node_of(user)
            && node::allows(node, attributes)
        {
            return Decision::Allow;
        }
        if self.view.index().allows(user, attributes) {
            return Decision::Allow;
        }
        if node::node_of(user).is_some() {
            return Decision::Deny("a node may only reach its own Node, Lease and pods");
        }
        Decision::Deny("")
    }
}
