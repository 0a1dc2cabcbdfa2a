//! A request as the authorisers see it: Kubernetes' request attributes
//! (verb, API group, resource, subresource, namespace, name; or a
//! non-resource path), borrowed from the request so describing one costs
//! no allocation.

use std::fmt;

use rudder_api::Kind;

use crate::auth::UserInfo;

/// What a request does to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` (and, in RBAC's own checks, `bind`, `escalate`).
    pub verb: &'a str,
    /// The object or path.
    pub target: Target<'a>,
}

/// What a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An API resource.
    Resource(ResourceAttributes<'a>),
    /// A URL that names no resource (`/version`, `/api`).
    NonResource {
        /// The path.
        path: &'a str,
    },
}

/// The resource part of a request's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceAttributes<'a> {
    /// The API group ("" for core).
    pub group: &'a str,
    /// The resource (`pods`).
    pub resource: &'a str,
    /// The subresource (`status`, `scale`) or "".
    pub subresource: &'a str,
    /// The namespace ("" for cluster-scoped kinds and for requests across
    /// every namespace).
    pub namespace: &'a str,
    /// The object's name ("" for collections and creates).
    pub name: &'a str,
}

impl<'a> Attributes<'a> {
    /// A request for `kind` objects.
    pub fn resource(
        verb: &'a str,
        kind: Kind,
        subresource: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        Self {
            verb,
            target: Target::Resource(ResourceAttributes {
                group: kind.group(),
                resource: kind.plural(),
                subresource,
                namespace: if kind.namespaced() { namespace } else { "" },
                name,
            }),
        }
    }

    /// A request for a non-resource path.
    pub fn non_resource(verb: &'a str, path: &'a str) -> Self {
        Self {
            verb,
            target: Target::NonResource { path },
        }
    }

    /// The resource attributes, if this is a resource request.
    pub fn resource_attributes(&self) -> Option<&ResourceAttributes<'a>> {
        match &self.target {
            Target::Resource(resource) => Some(resource),
            Target::NonResource { .. } => None,
        }
    }
}

/// The verb of an HTTP method on a collection or an object, as
/// kube-apiserver derives it.
pub fn verb_of(method: &axum::http::Method, named: bool, watch: bool) -> &'static str {
    use axum::http::Method;
    match (method, named) {
        (&Method::GET | &Method::HEAD, _) if watch => "watch",
        (&Method::GET | &Method::HEAD, true) => "get",
        (&Method::GET | &Method::HEAD, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "",
    }
}

/// The Kubernetes wording of a refusal: `pods "web" is forbidden: User
/// "jane" cannot get resource "pods" in API group "" in the namespace
/// "dev"`, with the authoriser's reason after it when there is one.
pub struct Refusal<'a> {
    /// Who asked.
    pub user: &'a UserInfo,
    /// What for.
    pub attributes: &'a Attributes<'a>,
    /// Why not, when an authoriser said.
    pub reason: &'a str,
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            user,
            attributes,
            reason,
        } = self;
        let verb = attributes.verb;
        match &attributes.target {
            Target::Resource(r) => {
                let resource = Resource(r);
                match r.name {
                    "" => write!(f, "{resource} is forbidden: ")?,
                    name => write!(f, "{resource} {name:?} is forbidden: ")?,
                }
                write!(
                    f,
                    "User {:?} cannot {verb} resource \"{resource}\" in API group {:?}",
                    user.name, r.group
                )?;
                match r.namespace {
                    "" => write!(f, " at the cluster scope")?,
                    namespace => write!(f, " in the namespace {namespace:?}")?,
                }
            }
            Target::NonResource { path } => {
                write!(
                    f,
                    "forbidden: User {:?} cannot {verb} path {path:?}",
                    user.name
                )?;
            }
        }
        if !reason.is_empty() {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// `pods` or `pods/status`.
struct Resource<'a, 'b>(&'b ResourceAttributes<'a>);

impl fmt::Display for Resource<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.resource)?;
        if !self.0.subresource.is_empty() {
            write!(f, "/{}", self.0.subresource)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> UserInfo {
        UserInfo {
            name: "jane".into(),
            uid: String::new(),
            groups: vec![],
        }
    }

    #[test]
    fn refusals_read_as_kubernetes_writes_them() {
        let user = jane();
        let list = Attributes::resource("list", Kind::Pod, "", "y", "");
        assert_eq!(
            Refusal {
                user: &user,
                attributes: &list,
                reason: ""
            }
            .to_string(),
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"y\""
        );
        let status = Attributes::resource("update", Kind::Node, "status", "", "n2");
        assert_eq!(
            Refusal {
                user: &user,
                attributes: &status,
                reason: "a node may only change itself"
            }
            .to_string(),
            "nodes/status \"n2\" is forbidden: User \"jane\" cannot update resource \"nodes/status\" \
             in API group \"\" at the cluster scope: a node may only change itself"
        );
    }
}
