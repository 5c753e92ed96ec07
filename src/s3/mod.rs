//! An S3-style object store behind the service seam ([`crate::service`]):
//! path-style requests (`/bucket/key`) on an S3-compatible store become the
//! IAM requests S3 itself authorizes, and a denial is S3's `AccessDenied`
//! XML. Nothing here knows the server: the seam's generic ext_authz
//! adapter runs it (`iamgate.mapping: s3`).
//!
//! Mapping (method, path, subresource in the query → action on resource):
//! - `GET /` → `s3:ListAllMyBuckets` on `*`.
//! - bucket (`/bucket`): `GET`/`HEAD` → `s3:ListBucket` (context
//!   `s3:prefix`, `s3:delimiter`, `s3:max-keys` from the query), `PUT` →
//!   `s3:CreateBucket`, `DELETE` → `s3:DeleteBucket`; `?policy` →
//!   `s3:GetBucketPolicy` / `s3:PutBucketPolicy` / `s3:DeleteBucketPolicy`;
//!   `?location`, `?tagging`, `?versioning`, `?versions`, `?uploads` as S3
//!   documents them. Resource `arn:aws:s3:::bucket`.
//! - object (`/bucket/key`): `GET`/`HEAD` → `s3:GetObject` (with
//!   `versionId`: `s3:GetObjectVersion`), `PUT` → `s3:PutObject` (a copy,
//!   `x-amz-copy-source`, also needs `s3:GetObject` on the source),
//!   `DELETE` → `s3:DeleteObject` (`s3:DeleteObjectVersion`); `?tagging`
//!   and multipart uploads (`?uploads`, `?uploadId`) as S3 documents them.
//!   Resource `arn:aws:s3:::bucket/key`.
//!
//! Refused, never guessed (S3's error codes, a 4xx/5xx denial): a bucket
//! name S3 would not accept, a key that does not decode strictly
//! ([`crate::uri`]) or holds empty, `.` or `..` segments (a proxy or store
//! may normalize them; a trailing `/` is kept), a repeated query parameter, an unknown query
//! parameter or subresource, and requests whose authorization depends on
//! the body (multi-object `POST ?delete`). Only path-style addressing is
//! read: the route must send the store a fixed Host (Envoy's
//! `host_rewrite_literal`) so that it never reads the bucket from a
//! client-chosen Host.

use std::collections::HashMap;

use crate::engine::ContextValue;
use crate::engine::authz::{AuthzAnswer, AuthzRequest};
use crate::service::catalog::Catalog;
use crate::service::{HttpCall, HttpMapping, HttpReply, Mapped, Refused, Service};
use crate::uri::{self, Component};

mod catalog_data;

/// S3's condition-key names as constants (generated with its tables).
pub use catalog_data::keys;

/// S3's Service Authorization Reference tables (every S3 action, not only
/// those the mapping produces), as the seam and the validator read them.
pub static CATALOG: Catalog = Catalog {
    prefix: "s3",
    name: "S3",
    source_version: catalog_data::SOURCE_VERSION,
    actions: &catalog_data::ACTIONS,
    resource_types: &catalog_data::RESOURCE_TYPES,
    condition_keys: &catalog_data::CONDITION_KEYS,
    condition_key_patterns: &catalog_data::CONDITION_KEY_PATTERNS,
};

/// The mapping name of S3 routes.
pub const MAPPING: &str = "s3";
/// The content type of S3's XML errors.
pub const CONTENT_TYPE: &str = "application/xml";
/// The longest key S3 accepts, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Every action the mapping produces.
const ACTIONS: &[&str] = &[
    "AbortMultipartUpload",
    "CreateBucket",
    "DeleteBucket",
    "DeleteBucketPolicy",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjectVersion",
    "GetBucketLocation",
    "GetBucketPolicy",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetObject",
    "GetObjectTagging",
    "GetObjectVersion",
    "GetObjectVersionTagging",
    "ListAllMyBuckets",
    "ListBucket",
    "ListBucketMultipartUploads",
    "ListBucketVersions",
    "ListMultipartUploadParts",
    "PutBucketPolicy",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutObject",
    "PutObjectTagging",
];

/// Query parameters of bucket listings (`ListObjects`, `ListObjectsV2`,
/// `ListObjectVersions`, `ListMultipartUploads`): not subresources.
const LIST_PARAMS: &[&str] = &[
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "list-type",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
];

/// The S3 service (no bundle data of its own).
#[derive(Debug, Default, Clone, Copy)]
pub struct S3Service;

impl Service for S3Service {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn mapping(&self) -> &'static str {
        MAPPING
    }

    fn actions(&self) -> Vec<&'static str> {
        ACTIONS.to_vec()
    }

    fn catalog(&self) -> Option<&'static Catalog> {
        Some(&CATALOG)
    }

    fn http(&self) -> Option<&dyn crate::service::HttpMapping> {
        Some(self)
    }
}

impl HttpMapping for S3Service {
    fn map(&self, call: &HttpCall<'_>) -> Result<Vec<Mapped>, Refused> {
        map_call(call)
    }

    fn denied(
        &self,
        _call: &HttpCall<'_>,
        request: &AuthzRequest,
        answer: &AuthzAnswer,
        decision_id: &str,
    ) -> HttpReply {
        let because = crate::ec2::response::because(answer, &request.action);
        let on = if request.resource == "*" {
            String::new()
        } else {
            format!(" on resource: \"{}\"", request.resource)
        };
        let message = format!(
            "User: {} is not authorized to perform: {}{on} {because}",
            request.principal_arn, request.action
        );
        HttpReply {
            status: 403,
            content_type: CONTENT_TYPE,
            body: error_xml("AccessDenied", &message, decision_id),
        }
    }
}

/// S3's XML error document.
pub fn error_xml(code: &str, message: &str, request_id: &str) -> String {
    use crate::ec2::response::escape;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

/// A refusal worded as S3 words it.
fn refuse(status: u16, code: &str, message: impl Into<String>) -> Refused {
    let message = message.into();
    let id = uuid::Uuid::new_v4().simple().to_string();
    Refused {
        reply: HttpReply {
            status,
            content_type: CONTENT_TYPE,
            body: error_xml(code, &message, &id),
        },
        message,
    }
}

fn invalid_uri(message: impl Into<String>) -> Refused {
    refuse(400, "InvalidURI", message)
}

fn not_implemented(what: &str) -> Refused {
    refuse(
        501,
        "NotImplemented",
        format!("{what} is not supported behind the authorizer"),
    )
}

fn method_not_allowed(method: &str) -> Refused {
    refuse(
        405,
        "MethodNotAllowed",
        format!("The specified method `{method}` is not allowed against this resource."),
    )
}

/// What a path names.
enum Target {
    Service,
    Bucket(String),
    Object(String, String),
}

/// The IAM requests of one S3 call.
pub fn map_call(call: &HttpCall<'_>) -> Result<Vec<Mapped>, Refused> {
    let (raw_path, raw_query) = match call.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (call.path, None),
    };
    let query = parse_query(raw_query)?;
    let target = parse_target(raw_path)?;
    let method = call.method;
    let has = |name: &str| query.contains_key(name);
    let known = |allowed: &[&str]| only_known(&query, allowed);
    let one = |action: &str, resource: String| {
        vec![Mapped {
            action: format!("s3:{action}"),
            resource,
            context: Vec::new(),
        }]
    };
    match target {
        Target::Service => {
            known(&[])?;
            match method {
                "GET" => Ok(one("ListAllMyBuckets", "*".to_owned())),
                m => Err(method_not_allowed(m)),
            }
        }
        Target::Bucket(bucket) => {
            let arn = format!("arn:aws:s3:::{bucket}");
            let sub = |name: &str, get: &str, put: Option<&str>, delete: Option<&str>| {
                known(&[name])?;
                let action = match method {
                    "GET" => Some(get),
                    "PUT" => put,
                    "DELETE" => delete,
                    _ => None,
                };
                action
                    .map(|a| one(a, arn.clone()))
                    .ok_or_else(|| method_not_allowed(method))
            };
            if has("policy") {
                sub(
                    "policy",
                    "GetBucketPolicy",
                    Some("PutBucketPolicy"),
                    Some("DeleteBucketPolicy"),
                )
            } else if has("location") {
                sub("location", "GetBucketLocation", None, None)
            } else if has("tagging") {
                // S3 authorizes DeleteBucketTagging as s3:PutBucketTagging.
                sub(
                    "tagging",
                    "GetBucketTagging",
                    Some("PutBucketTagging"),
                    Some("PutBucketTagging"),
                )
            } else if has("versioning") {
                sub(
                    "versioning",
                    "GetBucketVersioning",
                    Some("PutBucketVersioning"),
                    None,
                )
            } else if has("delete") {
                Err(not_implemented(
                    "a multi-object delete (its keys are in the body)",
                ))
            } else if has("versions") || has("uploads") {
                let (name, action) = if has("versions") {
                    ("versions", "ListBucketVersions")
                } else {
                    ("uploads", "ListBucketMultipartUploads")
                };
                let mut allowed = vec![name];
                allowed.extend_from_slice(LIST_PARAMS);
                known(&allowed)?;
                match method {
                    "GET" => Ok(vec![listing(action, arn, &query)]),
                    m => Err(method_not_allowed(m)),
                }
            } else {
                match method {
                    "GET" | "HEAD" => {
                        known(LIST_PARAMS)?;
                        Ok(vec![listing("ListBucket", arn, &query)])
                    }
                    "PUT" => {
                        known(&[])?;
                        Ok(one("CreateBucket", arn))
                    }
                    "DELETE" => {
                        known(&[])?;
                        Ok(one("DeleteBucket", arn))
                    }
                    m => Err(method_not_allowed(m)),
                }
            }
        }
        Target::Object(bucket, key) => object_call(call, &query, &bucket, &key),
    }
}

/// Refuses a query parameter the call does not take. `x-id` names the
/// SDK operation; S3 acts on the method and subresources, so it is
/// checked by neither.
fn only_known(query: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Refused> {
    match query
        .keys()
        .find(|k| k.as_str() != "x-id" && !allowed.contains(&k.as_str()))
    {
        Some(k) => Err(not_implemented(&format!("the query parameter `{k}`"))),
        None => Ok(()),
    }
}

/// A listing with its `s3:` condition keys from the query.
fn listing(action: &str, arn: String, query: &HashMap<String, String>) -> Mapped {
    let context = [
        ("prefix", keys::S3_PREFIX),
        ("delimiter", keys::S3_DELIMITER),
        ("max-keys", keys::S3_MAX_KEYS),
    ]
    .iter()
    .filter_map(|(param, key)| {
        query
            .get(*param)
            .map(|v| ((*key).to_owned(), ContextValue::One(v.clone())))
    })
    .collect();
    Mapped {
        action: format!("s3:{action}"),
        resource: arn,
        context,
    }
}

fn object_call(
    call: &HttpCall<'_>,
    query: &HashMap<String, String>,
    bucket: &str,
    key: &str,
) -> Result<Vec<Mapped>, Refused> {
    let arn = format!("arn:aws:s3:::{bucket}/{key}");
    let method = call.method;
    let has = |name: &str| query.contains_key(name);
    let known = |allowed: &[&str]| only_known(query, allowed);
    let version = query.get("versionId");
    let mut context = Vec::new();
    if let Some(v) = version {
        context.push((keys::S3_VERSIONID.to_owned(), ContextValue::One(v.clone())));
    }
    for (header, key) in [
        ("x-amz-acl", keys::S3_X_AMZ_ACL),
        (
            "x-amz-server-side-encryption",
            keys::S3_X_AMZ_SERVER_SIDE_ENCRYPTION,
        ),
    ] {
        if let Some(v) = call.headers.get(header) {
            context.push((key.to_owned(), ContextValue::One(v.clone())));
        }
    }
    let at = |action: &str, context: Vec<(String, ContextValue)>| Mapped {
        action: format!("s3:{action}"),
        resource: arn.clone(),
        context,
    };
    if has("tagging") {
        known(&["tagging", "versionId"])?;
        let action = match (method, version.is_some()) {
            ("GET", false) => "GetObjectTagging",
            ("GET", true) => "GetObjectVersionTagging",
            ("PUT", _) => "PutObjectTagging",
            ("DELETE", _) => "DeleteObjectTagging",
            (m, _) => return Err(method_not_allowed(m)),
        };
        return Ok(vec![at(action, context)]);
    }
    if has("uploads") {
        known(&["uploads"])?;
        return match method {
            "POST" => Ok(vec![at("PutObject", context)]),
            m => Err(method_not_allowed(m)),
        };
    }
    if has("uploadId") {
        return match method {
            "PUT" => {
                known(&["uploadId", "partNumber"])?;
                let mut out = vec![at("PutObject", context)];
                out.extend(copy_source(call)?);
                Ok(out)
            }
            "POST" => {
                known(&["uploadId"])?;
                Ok(vec![at("PutObject", context)])
            }
            "DELETE" => {
                known(&["uploadId"])?;
                Ok(vec![at("AbortMultipartUpload", context)])
            }
            "GET" => {
                known(&["uploadId", "max-parts", "part-number-marker"])?;
                Ok(vec![at("ListMultipartUploadParts", context)])
            }
            m => Err(method_not_allowed(m)),
        };
    }
    known(&["versionId"])?;
    match (method, version.is_some()) {
        ("GET" | "HEAD", false) => Ok(vec![at("GetObject", context)]),
        ("GET" | "HEAD", true) => Ok(vec![at("GetObjectVersion", context)]),
        ("DELETE", false) => Ok(vec![at("DeleteObject", context)]),
        ("DELETE", true) => Ok(vec![at("DeleteObjectVersion", context)]),
        ("PUT", false) => {
            let mut out = vec![at("PutObject", context)];
            out.extend(copy_source(call)?);
            Ok(out)
        }
        (m, _) => Err(method_not_allowed(m)),
    }
}

/// The read a copy (`x-amz-copy-source: bucket/key[?versionId=V]`, URL
/// encoded) needs on its source, if the request is a copy.
fn copy_source(call: &HttpCall<'_>) -> Result<Option<Mapped>, Refused> {
    let Some(raw) = call.headers.get("x-amz-copy-source") else {
        return Ok(None);
    };
    let bad = |why: &str| refuse(400, "InvalidArgument", format!("x-amz-copy-source: {why}"));
    let (path, version) = match raw.split_once('?') {
        Some((p, q)) => {
            let v = q
                .strip_prefix("versionId=")
                .filter(|v| !v.is_empty() && !v.contains('&'))
                .ok_or_else(|| bad("only `?versionId=` may follow the source"))?;
            let v = uri::decode(v.as_bytes(), Component::Query)
                .map_err(|e| bad(&format!("the version id {e}")))?;
            (p, Some(v.into_owned()))
        }
        None => (raw.as_str(), None),
    };
    if path.starts_with("arn:") || path.starts_with("/arn:") {
        return Err(not_implemented("a copy from an access point"));
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    let Target::Object(bucket, key) = parse_target(&format!("/{path}")).map_err(|r| Refused {
        message: format!("x-amz-copy-source: {}", r.message),
        ..r
    })?
    else {
        return Err(bad("the source must name a bucket and a key"));
    };
    let mut context = Vec::new();
    let action = match version {
        Some(v) => {
            context.push((keys::S3_VERSIONID.to_owned(), ContextValue::One(v)));
            "s3:GetObjectVersion"
        }
        None => "s3:GetObject",
    };
    Ok(Some(Mapped {
        action: action.to_owned(),
        resource: format!("arn:aws:s3:::{bucket}/{key}"),
        context,
    }))
}

/// The bucket and key a raw path names.
fn parse_target(raw: &str) -> Result<Target, Refused> {
    let rest = raw
        .strip_prefix('/')
        .ok_or_else(|| invalid_uri("the path must start with `/`"))?;
    if rest.is_empty() {
        return Ok(Target::Service);
    }
    let (raw_bucket, raw_key) = match rest.split_once('/') {
        Some((b, k)) => (b, k),
        None => (rest, ""),
    };
    let bucket = uri::decode(raw_bucket.as_bytes(), Component::PathSegment)
        .map_err(|e| invalid_uri(format!("the bucket name {e}")))?;
    if !is_bucket_name(&bucket) {
        return Err(refuse(
            400,
            "InvalidBucketName",
            "The specified bucket is not valid.",
        ));
    }
    if raw_key.is_empty() {
        return Ok(Target::Bucket(bucket.into_owned()));
    }
    let mut key = String::with_capacity(raw_key.len());
    for (i, seg) in raw_key.split('/').enumerate() {
        let decoded = uri::decode(seg.as_bytes(), Component::PathSegment)
            .map_err(|e| invalid_uri(format!("the key {e}")))?;
        if i > 0 {
            key.push('/');
        }
        key.push_str(&decoded);
    }
    // Judged after decoding: `%2F` is a `/` to S3, so `a%2F..%2Fb` holds a
    // `..` segment too. A trailing `/` (a "folder" object) is kept: no
    // proxy merges it away, unlike `//` inside a key.
    let inner = key.strip_suffix('/').unwrap_or(&key);
    if inner
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid_uri(
            "the key holds an empty, `.` or `..` segment, which a proxy or store may normalize",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(refuse(400, "KeyTooLongError", "Your key is too long"));
    }
    Ok(Target::Object(bucket.into_owned(), key))
}

/// S3's bucket naming rules: 3 to 63 characters of lower-case letters,
/// digits, `.` and `-`, beginning and ending with a letter or digit, no
/// `..`, not an IP address.
pub fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && edge(b.first())
        && edge(b.last())
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// The query's parameters, decoded; a repeated name is refused.
fn parse_query(raw: Option<&str>) -> Result<HashMap<String, String>, Refused> {
    let mut out = HashMap::new();
    let Some(raw) = raw else {
        return Ok(out);
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = uri::decode(name.as_bytes(), Component::Query)
            .map_err(|e| invalid_uri(format!("a query parameter name {e}")))?;
        let value = uri::decode(value.as_bytes(), Component::Query)
            .map_err(|e| invalid_uri(format!("query parameter `{name}` {e}")))?;
        if out
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(refuse(
                400,
                "InvalidArgument",
                format!("query parameter `{name}` appears more than once"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
