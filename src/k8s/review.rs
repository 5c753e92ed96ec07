//! The review objects the Kubernetes API server posts to webhooks, as typed
//! serde structs: `admission.k8s.io/v1` `AdmissionReview` and
//! `authorization.k8s.io/v1` `SubjectAccessReview`, and the answers to them.
//! Field names follow the Kubernetes API reference. Unknown fields are
//! ignored (the API server adds fields over releases), but the apiVersion,
//! the kind and every field iamgate reads are checked: a review that is not
//! what it claims is refused with the JSON path of the problem.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `admission.k8s.io/v1`.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// `authorization.k8s.io/v1`.
pub const AUTHORIZATION_API_VERSION: &str = "authorization.k8s.io/v1";

/// Why a posted review was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not a JSON object: {0}")]
    NotJson(String),
    #[error("at `{path}`: {message}")]
    Field { path: String, message: String },
    #[error("`apiVersion` is `{got}`, expected `{expected}`")]
    ApiVersion { got: String, expected: &'static str },
    #[error("`kind` is `{got}`, expected `{expected}`")]
    Kind { got: String, expected: &'static str },
    #[error("`{0}` is missing")]
    Missing(&'static str),
}

/// The user the API server authenticated (`userInfo` of an admission
/// request; `user`, `groups`, `extra`, `uid` of a SubjectAccessReview spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Authenticator-provided attributes (the AWS IAM authenticator's
    /// `arn`, `canonicalArn`, `sessionName`, `accessKeyId`).
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// `group`, `version`, `kind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

/// `group`, `version`, `resource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub resource: String,
}

/// One admission request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    pub operation: String,
    pub user_info: UserInfo,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReviewJson {
    request: Option<AdmissionRequest>,
}

/// Reads an AdmissionReview. On failure, the request `uid` when the body
/// carries one (so the answer can still echo it).
pub fn parse_admission(body: &[u8]) -> Result<AdmissionRequest, (ReviewError, Option<String>)> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| (ReviewError::NotJson(e.to_string()), None))?;
    let uid = raw
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    check_type(&raw, ADMISSION_API_VERSION, "AdmissionReview").map_err(|e| (e, uid.clone()))?;
    let review: AdmissionReviewJson = typed(raw).map_err(|e| (e, uid.clone()))?;
    let request = review
        .request
        .ok_or((ReviewError::Missing("request"), None))?;
    if request.uid.is_empty() {
        return Err((ReviewError::Missing("request.uid"), None));
    }
    Ok(request)
}

/// The answer to an admission request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

/// `metav1.Status` as admission answers carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub code: u16,
    pub message: String,
    /// `Forbidden`, `BadRequest`, `InternalError`, ...
    pub reason: String,
}

impl AdmissionResponse {
    /// The full AdmissionReview body.
    pub fn review(&self) -> Value {
        serde_json::json!({
            "apiVersion": ADMISSION_API_VERSION,
            "kind": "AdmissionReview",
            "response": self,
        })
    }
}

/// `resourceAttributes` of a SubjectAccessReview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResourceAttributes {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub verb: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub name: String,
}

/// `nonResourceAttributes` of a SubjectAccessReview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NonResourceAttributes {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub verb: String,
}

/// What a SubjectAccessReview asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource(ResourceAttributes),
    NonResource(NonResourceAttributes),
}

/// A SubjectAccessReview's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReview {
    pub user: UserInfo,
    pub attributes: Attributes,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecJson {
    #[serde(default)]
    resource_attributes: Option<ResourceAttributes>,
    #[serde(default)]
    non_resource_attributes: Option<NonResourceAttributes>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    extra: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    uid: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessReviewJson {
    spec: Option<SpecJson>,
}

/// Reads a SubjectAccessReview: exactly one of `resourceAttributes` and
/// `nonResourceAttributes`, and a user.
pub fn parse_access_review(body: &[u8]) -> Result<AccessReview, ReviewError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    check_type(&raw, AUTHORIZATION_API_VERSION, "SubjectAccessReview")?;
    let review: AccessReviewJson = typed(raw)?;
    let spec = review.spec.ok_or(ReviewError::Missing("spec"))?;
    let attributes = match (spec.resource_attributes, spec.non_resource_attributes) {
        (Some(r), None) => Attributes::Resource(r),
        (None, Some(n)) => Attributes::NonResource(n),
        (Some(_), Some(_)) => {
            return Err(ReviewError::Field {
                path: "spec".into(),
                message: "resourceAttributes and nonResourceAttributes are exclusive".into(),
            });
        }
        (None, None) => return Err(ReviewError::Missing("spec.resourceAttributes")),
    };
    if spec.user.is_empty() && spec.groups.is_empty() {
        return Err(ReviewError::Missing("spec.user"));
    }
    Ok(AccessReview {
        user: UserInfo {
            username: spec.user,
            uid: spec.uid,
            groups: spec.groups,
            extra: spec.extra,
        },
        attributes,
    })
}

/// A SubjectAccessReview's `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessReviewStatus {
    pub allowed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub evaluation_error: String,
}

impl AccessReviewStatus {
    /// The full SubjectAccessReview body the API server reads back.
    pub fn review(&self) -> Value {
        serde_json::json!({
            "apiVersion": AUTHORIZATION_API_VERSION,
            "kind": "SubjectAccessReview",
            "status": self,
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(raw: Value) -> Result<T, ReviewError> {
    serde_path_to_error::deserialize(raw).map_err(|e| ReviewError::Field {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn check_type(
    raw: &Value,
    expected_version: &'static str,
    expected_kind: &'static str,
) -> Result<(), ReviewError> {
    let field = |name: &'static str| -> Result<String, ReviewError> {
        match raw.get(name) {
            None | Some(Value::Null) => Err(ReviewError::Missing(name)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ReviewError::Field {
                path: name.into(),
                message: "not a string".into(),
            }),
        }
    };
    let api_version = field("apiVersion")?;
    if api_version != expected_version {
        return Err(ReviewError::ApiVersion {
            got: api_version,
            expected: expected_version,
        });
    }
    let kind = field("kind")?;
    if kind != expected_kind {
        return Err(ReviewError::Kind {
            got: kind,
            expected: expected_kind,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn admission_reviews_parse_and_keep_the_uid_on_errors() {
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "ec2.services.k8s.aws", "version": "v1alpha1", "kind": "Instance"},
              "resource": {"group": "ec2.services.k8s.aws", "version": "v1alpha1", "resource": "instances"},
              "operation": "CREATE", "userInfo": {"username": "alice", "extra": {"arn": ["a"]}},
              "object": {"spec": {}}}});
        let r = parse_admission(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.uid, "u1");
        assert_eq!(r.user_info.extra["arn"], vec!["a"]);

        let bad = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
            "request": {"uid": "u2"}});
        let (e, uid) = parse_admission(bad.to_string().as_bytes()).unwrap_err();
        assert_eq!(uid.as_deref(), Some("u2"));
        assert!(e.to_string().contains("apiVersion"), "{e}");

        let typo = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u3", "operation": 7}});
        let (e, uid) = parse_admission(typo.to_string().as_bytes()).unwrap_err();
        assert_eq!(uid.as_deref(), Some("u3"));
        assert!(e.to_string().contains("request"), "{e}");
        assert!(parse_admission(b"[1,2").is_err());
    }

    #[test]
    fn access_reviews_need_exactly_one_kind_of_attributes() {
        let ok = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods"}}});
        let r = parse_access_review(ok.to_string().as_bytes()).unwrap();
        assert!(matches!(r.attributes, Attributes::Resource(ref a) if a.verb == "get"));
        let both = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "bob", "resourceAttributes": {}, "nonResourceAttributes": {}}});
        assert!(parse_access_review(both.to_string().as_bytes()).is_err());
        let wrong =
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "TokenReview", "spec": {}});
        assert!(parse_access_review(wrong.to_string().as_bytes()).is_err());
    }
}
