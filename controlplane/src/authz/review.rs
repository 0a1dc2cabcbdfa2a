//! SelfSubjectAccessReview (`authorization.k8s.io/v1`): "may I?", asked
//! by `kubectl auth can-i`. The answer is the chain's decision for the
//! asking user on the attributes in the review's spec; nothing is stored.

use serde_json::{Value, json};

use super::{
    Authorizer, Decision,
    attributes::{Attributes, ResourceAttributes, Target},
};
use crate::{apiserver::ApiServerError, auth::UserInfo};

/// The review's API group.
pub const GROUP: &str = "authorization.k8s.io";
/// Its resource name.
pub const RESOURCE: &str = "selfsubjectaccessreviews";

/// Answers `review` (a SelfSubjectAccessReview as JSON) for `user`: the
/// review with its `status` filled in.
///
/// # Errors
/// [`ApiServerError::BadRequest`] when the spec names neither resource
/// nor non-resource attributes.
pub fn answer(
    authorizer: &Authorizer,
    user: &UserInfo,
    mut review: Value,
) -> Result<Value, ApiServerError> {
    let text = |pointer: &str| -> String {
        review
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let resource = review
        .pointer("/spec/resourceAttributes")
        .is_some_and(Value::is_object);
    let non_resource = review
        .pointer("/spec/nonResourceAttributes")
        .is_some_and(Value::is_object);
    let decision = match (resource, non_resource) {
        (true, false) => {
            let (verb, group, resource, subresource, namespace, name) = (
                text("/spec/resourceAttributes/verb"),
                text("/spec/resourceAttributes/group"),
                text("/spec/resourceAttributes/resource"),
                text("/spec/resourceAttributes/subresource"),
                text("/spec/resourceAttributes/namespace"),
                text("/spec/resourceAttributes/name"),
            );
            authorizer.decide(
                user,
                &Attributes {
                    verb: &verb,
                    target: Target::Resource(ResourceAttributes {
                        group: &group,
                        resource: &resource,
                        subresource: &subresource,
                        namespace: &namespace,
                        name: &name,
                    }),
                },
            )
        }
        (false, true) => {
            let (verb, path) = (
                text("/spec/nonResourceAttributes/verb"),
                text("/spec/nonResourceAttributes/path"),
            );
            authorizer.decide(user, &Attributes::non_resource(&verb, &path))
        }
        _ => {
            return Err(ApiServerError::BadRequest(
                "selfsubjectaccessreview: spec needs exactly one of resourceAttributes or nonResourceAttributes"
                    .to_owned(),
            ));
        }
    };
    let status = match decision {
        Decision::Allow => json!({"allowed": true, "reason": "allowed"}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    };
    if let Some(object) = review.as_object_mut() {
        object.insert("status".into(), status);
        object
            .entry("apiVersion")
            .or_insert_with(|| json!("authorization.k8s.io/v1"));
        object
            .entry("kind")
            .or_insert_with(|| json!("SelfSubjectAccessReview"));
        object.entry("metadata").or_insert_with(|| json!({}));
    }
    Ok(review)
}
