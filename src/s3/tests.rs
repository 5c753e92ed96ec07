//! The S3 mapping (issue 12: a second service through the seam).

use std::collections::HashMap;

use super::*;
use crate::engine::{Outcome, Reason};

fn call<'a>(method: &'a str, path: &'a str, headers: &'a HashMap<String, String>) -> HttpCall<'a> {
    HttpCall {
        method,
        path,
        host: "s3.example.internal",
        headers,
        region: None,
    }
}

fn map(method: &str, path: &str) -> Result<Vec<(String, String)>, Refused> {
    let h = HashMap::new();
    map_with(method, path, &h)
}

fn map_with(
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, Refused> {
    map_call(&call(method, path, headers))
        .map(|v| v.into_iter().map(|m| (m.action, m.resource)).collect())
}

fn one(action: &str, resource: &str) -> Vec<(String, String)> {
    vec![(action.to_owned(), resource.to_owned())]
}

#[test]
fn objects_and_buckets_map_to_the_actions_s3_authorizes() {
    let cases = [
        ("GET", "/", "s3:ListAllMyBuckets", "*"),
        ("GET", "/photos", "s3:ListBucket", "arn:aws:s3:::photos"),
        ("HEAD", "/photos/", "s3:ListBucket", "arn:aws:s3:::photos"),
        (
            "GET",
            "/photos?list-type=2&prefix=2024%2F",
            "s3:ListBucket",
            "arn:aws:s3:::photos",
        ),
        ("PUT", "/photos", "s3:CreateBucket", "arn:aws:s3:::photos"),
        (
            "DELETE",
            "/photos",
            "s3:DeleteBucket",
            "arn:aws:s3:::photos",
        ),
        (
            "GET",
            "/photos?policy",
            "s3:GetBucketPolicy",
            "arn:aws:s3:::photos",
        ),
        (
            "PUT",
            "/photos?policy",
            "s3:PutBucketPolicy",
            "arn:aws:s3:::photos",
        ),
        (
            "DELETE",
            "/photos?policy=",
            "s3:DeleteBucketPolicy",
            "arn:aws:s3:::photos",
        ),
        (
            "GET",
            "/photos?location",
            "s3:GetBucketLocation",
            "arn:aws:s3:::photos",
        ),
        (
            "GET",
            "/photos?versions&prefix=a",
            "s3:ListBucketVersions",
            "arn:aws:s3:::photos",
        ),
        (
            "GET",
            "/photos/2024/cat.jpg",
            "s3:GetObject",
            "arn:aws:s3:::photos/2024/cat.jpg",
        ),
        (
            "HEAD",
            "/photos/cat.jpg?x-id=HeadObject",
            "s3:GetObject",
            "arn:aws:s3:::photos/cat.jpg",
        ),
        (
            "GET",
            "/photos/cat.jpg?versionId=3",
            "s3:GetObjectVersion",
            "arn:aws:s3:::photos/cat.jpg",
        ),
        (
            "PUT",
            "/photos/a%20b%2Bc.txt",
            "s3:PutObject",
            "arn:aws:s3:::photos/a b+c.txt",
        ),
        (
            "PUT",
            "/photos/a+b",
            "s3:PutObject",
            "arn:aws:s3:::photos/a+b",
        ),
        (
            "DELETE",
            "/photos/cat.jpg",
            "s3:DeleteObject",
            "arn:aws:s3:::photos/cat.jpg",
        ),
        (
            "DELETE",
            "/photos/cat.jpg?versionId=3",
            "s3:DeleteObjectVersion",
            "arn:aws:s3:::photos/cat.jpg",
        ),
        (
            "GET",
            "/photos/cat.jpg?tagging",
            "s3:GetObjectTagging",
            "arn:aws:s3:::photos/cat.jpg",
        ),
        (
            "POST",
            "/photos/big?uploads",
            "s3:PutObject",
            "arn:aws:s3:::photos/big",
        ),
        (
            "PUT",
            "/photos/big?partNumber=1&uploadId=u",
            "s3:PutObject",
            "arn:aws:s3:::photos/big",
        ),
        (
            "DELETE",
            "/photos/big?uploadId=u",
            "s3:AbortMultipartUpload",
            "arn:aws:s3:::photos/big",
        ),
        // `%2F` is a `/` to S3.
        (
            "GET",
            "/photos/a%2Fb",
            "s3:GetObject",
            "arn:aws:s3:::photos/a/b",
        ),
    ];
    for (method, path, action, resource) in cases {
        assert_eq!(
            map(method, path).map_err(|r| r.message),
            Ok(one(action, resource)),
            "{method} {path}"
        );
    }
    let actions = S3Service.actions();
    for (_, path, action, _) in cases {
        let name = action.trim_start_matches("s3:");
        assert!(
            actions.contains(&name),
            "{action} ({path}) is in the catalog"
        );
    }
}

#[test]
fn listings_carry_their_condition_keys() {
    let h = HashMap::new();
    let m = map_call(&call(
        "GET",
        "/photos?prefix=home%2Falice%2F&delimiter=%2F&max-keys=10",
        &h,
    ))
    .unwrap();
    let context: HashMap<_, _> = m[0].context.iter().cloned().collect();
    assert_eq!(
        context.get("s3:prefix"),
        Some(&ContextValue::One("home/alice/".to_owned()))
    );
    assert_eq!(
        context.get("s3:delimiter"),
        Some(&ContextValue::One("/".to_owned()))
    );
    assert_eq!(
        context.get("s3:max-keys"),
        Some(&ContextValue::One("10".to_owned()))
    );
    // No prefix asked for: no key (a policy's condition on it then fails).
    let m = map_call(&call("GET", "/photos", &h)).unwrap();
    assert!(m[0].context.is_empty());
}

#[test]
fn a_copy_also_reads_its_source() {
    let mut h = HashMap::new();
    h.insert(
        "x-amz-copy-source".to_owned(),
        "/secret/plans%20v2.txt".to_owned(),
    );
    assert_eq!(
        map_with("PUT", "/photos/copy.txt", &h).map_err(|r| r.message),
        Ok(vec![
            (
                "s3:PutObject".to_owned(),
                "arn:aws:s3:::photos/copy.txt".to_owned()
            ),
            (
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::secret/plans v2.txt".to_owned()
            ),
        ])
    );
    h.insert(
        "x-amz-copy-source".to_owned(),
        "secret/k?versionId=7".to_owned(),
    );
    let m = map_call(&call("PUT", "/photos/copy.txt", &h)).unwrap();
    assert_eq!(
        (m[1].action.as_str(), m[1].resource.as_str()),
        ("s3:GetObjectVersion", "arn:aws:s3:::secret/k")
    );
    for bad in [
        "secret",
        "secret/../x",
        "arn:aws:s3:us-east-1:1:accesspoint/a/object/k",
        "secret/k?acl",
    ] {
        h.insert("x-amz-copy-source".to_owned(), bad.to_owned());
        assert!(map_with("PUT", "/photos/copy.txt", &h).is_err(), "{bad}");
    }
}

#[test]
fn ambiguous_or_unknown_requests_are_refused_in_s3_words() {
    let cases = [
        ("GET", "/Photos/x", 400, "InvalidBucketName"),
        ("GET", "/ab/x", 400, "InvalidBucketName"),
        ("GET", "/192.168.0.1/x", 400, "InvalidBucketName"),
        ("GET", "/photos/a//b", 400, "InvalidURI"),
        ("GET", "/photos/a//", 400, "InvalidURI"),
        ("GET", "/photos//", 400, "InvalidURI"),
        ("GET", "/photos/../", 400, "InvalidURI"),
        ("GET", "/photos/a/../b", 400, "InvalidURI"),
        ("GET", "/photos/a/%2E%2E/b", 400, "InvalidURI"),
        ("GET", "/photos/a%2F..%2Fb", 400, "InvalidURI"),
        ("GET", "/photos/a%zz", 400, "InvalidURI"),
        ("GET", "/photos/a b", 400, "InvalidURI"),
        ("GET", "/photos?prefix=a&prefix=b", 400, "InvalidArgument"),
        ("GET", "/photos?acl", 501, "NotImplemented"),
        ("GET", "/photos/x?acl", 501, "NotImplemented"),
        ("GET", "/photos/x?prefix=a", 501, "NotImplemented"),
        ("POST", "/photos?delete", 501, "NotImplemented"),
        ("POST", "/photos/x", 405, "MethodNotAllowed"),
        ("PUT", "/", 405, "MethodNotAllowed"),
        ("PATCH", "/photos", 405, "MethodNotAllowed"),
    ];
    for (method, path, status, code) in cases {
        let r = map(method, path).expect_err(path);
        assert_eq!(r.reply.status, status, "{method} {path}: {}", r.message);
        assert_eq!(r.reply.content_type, CONTENT_TYPE);
        assert!(
            r.reply.body.contains(&format!("<Code>{code}</Code>")),
            "{method} {path}: {}",
            r.reply.body
        );
    }
    let long = format!("/photos/{}", "k".repeat(1025));
    assert_eq!(map("GET", &long).unwrap_err().reply.status, 400);
}

#[test]
fn a_denial_is_s3_access_denied_xml() {
    let req = AuthzRequest {
        principal_arn: "arn:aws:iam::111122223333:user/alice".to_owned(),
        action: "s3:GetObject".to_owned(),
        resource: "arn:aws:s3:::photos/<cat>.jpg".to_owned(),
        ..AuthzRequest::default()
    };
    let answer = AuthzAnswer {
        decision: Outcome::ImplicitDeny,
        reason: Reason::NoIdentityAllow.into(),
        matched: Vec::new(),
        missing_context_keys: Vec::new(),
        revision: "r1".into(),
    };
    let h = HashMap::new();
    let reply = S3Service.denied(&call("GET", "/photos/x", &h), &req, &answer, "dec-1");
    assert_eq!((reply.status, reply.content_type), (403, CONTENT_TYPE));
    assert_eq!(
        reply.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>User: arn:aws:iam::111122223333:user/alice is not authorized to perform: \
         s3:GetObject on resource: &quot;arn:aws:s3:::photos/&lt;cat&gt;.jpg&quot; because no \
         identity-based policy allows the s3:GetObject action</Message>\
         <RequestId>dec-1</RequestId></Error>"
    );
}

#[test]
fn bucket_names_follow_s3_rules() {
    for ok in ["abc", "my-bucket.v2", "0bucket9", &"a".repeat(63)] {
        assert!(is_bucket_name(ok), "{ok}");
    }
    for bad in [
        "ab",
        "-abc",
        "abc-",
        "a..b",
        "ABC",
        "a_b",
        "10.0.0.1",
        &"a".repeat(64),
    ] {
        assert!(!is_bucket_name(bad), "{bad}");
    }
}

/// Issue 12: S3 hands the seam its own catalog. Every action the mapping
/// produces, and every condition key it sets, is one S3 defines; the
/// tables are sorted as the lookups binary-search them.
#[test]
fn the_catalog_knows_what_the_mapping_produces() {
    let catalog = S3Service.catalog().unwrap();
    assert_eq!((catalog.prefix, catalog.name), ("s3", "S3"));
    for a in ACTIONS {
        assert_eq!(catalog.action(a).map(|d| d.name), Some(*a), "{a}");
    }
    for k in [
        keys::S3_PREFIX,
        keys::S3_DELIMITER,
        keys::S3_MAX_KEYS,
        keys::S3_VERSIONID,
        keys::S3_X_AMZ_ACL,
        keys::S3_X_AMZ_SERVER_SIDE_ENCRYPTION,
    ] {
        assert!(catalog.condition_key(k).is_some(), "{k}");
    }
    let sorted = |names: Vec<&str>| {
        names
            .windows(2)
            .all(|w| w[0].to_ascii_lowercase() < w[1].to_ascii_lowercase())
    };
    assert!(sorted(catalog.actions.iter().map(|a| a.name).collect()));
    assert!(sorted(
        catalog.resource_types.iter().map(|r| r.name).collect()
    ));
    assert!(sorted(
        catalog.condition_keys.iter().map(|k| k.name).collect()
    ));
    let object = catalog.resource_type("object").unwrap();
    assert!(object.matches_arn("arn:aws:s3:::photos/2026/a.jpg"));
    assert!(!object.matches_arn("arn:aws:s3:::photos"));
}

/// Issue 12: the validator reads whichever catalogs it is given. S3's
/// actions, resource types and keys are judged by S3's tables, in S3's
/// words, beside EC2's; with no S3 catalog nothing S3 is judged.
#[test]
fn every_catalog_given_is_checked() {
    let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["s3:GetObjekt", "s3:GetObject", "ec2:RunInstance"],
        "Resource": ["arn:aws:s3:::photos/*", "arn:aws:s3:::photos"],
        "Condition": {"StringEquals": {"s3:x-amz-acl": "private", "s3:nosuch": "x"}}
    }, {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::photos",
        "Condition": {"StringLike": {"s3:prefix": "home/*"}, "NumericLessThan": {"s3:max-keys": "10"}}
    }]});
    let found = |catalogs: &[&'static Catalog]| {
        crate::validate::validate_document(&doc, crate::policy::PolicyKind::Identity, catalogs)
            .into_iter()
            .map(|f| (f.code, f.path, f.message))
            .collect::<Vec<_>>()
    };
    let both = found(&[&crate::ec2::catalog::CATALOG, &CATALOG]);
    let has = |code: &str, path: &str, words: &str| {
        both.iter()
            .any(|(c, p, m)| *c == code && p == path && m.contains(words))
    };
    assert!(
        has(
            "UNKNOWN_ACTION",
            "$.Statement[0].Action[0]",
            "is not an S3 action"
        ),
        "{both:?}"
    );
    assert!(
        has(
            "UNKNOWN_ACTION",
            "$.Statement[0].Action[2]",
            "is not an EC2 action"
        ),
        "{both:?}"
    );
    assert!(
        has(
            "UNKNOWN_CONDITION_KEY",
            "$.Statement[0].Condition.StringEquals.s3:nosuch",
            "that S3 defines"
        ),
        "{both:?}"
    );
    // `s3:x-amz-acl` is S3's, but `s3:GetObject` does not take it.
    assert!(
        has(
            "CONDITION_KEY_NOT_SUPPORTED",
            "$.Statement[0].Condition.StringEquals.s3:x-amz-acl",
            "`s3:GetObject`"
        ),
        "{both:?}"
    );
    // A bucket ARN beside an object ARN for `s3:GetObject`.
    assert!(
        has(
            "RESOURCE_TYPE_MISMATCH",
            "$.Statement[0].Resource[1]",
            "`s3:GetObject`"
        ),
        "{both:?}"
    );
    // `s3:max-keys` is numeric, `s3:prefix` a string: the second statement is clean.
    assert!(
        !both.iter().any(|(_, p, _)| p.starts_with("$.Statement[1]")),
        "{both:?}"
    );
    let ec2_only = found(&[&crate::ec2::catalog::CATALOG]);
    assert!(
        ec2_only.iter().all(|(_, _, m)| !m.contains("S3")),
        "{ec2_only:?}"
    );
    assert!(
        ec2_only
            .iter()
            .any(|(_, _, m)| m.contains("is not an EC2 action"))
    );
}

/// Issue 12: S3's keys are typed by S3's catalog when the validator is
/// given it (a numeric operator on `s3:prefix` is flagged, on
/// `s3:max-keys` it is not).
#[test]
fn s3_keys_are_typed_by_s3s_catalog() {
    let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::photos",
        "Condition": {"NumericLessThan": {"s3:prefix": "3", "s3:max-keys": "10"}}
    }]});
    let codes = |catalogs: &[&'static Catalog]| {
        crate::validate::validate_document(&doc, crate::policy::PolicyKind::Identity, catalogs)
            .into_iter()
            .map(|f| (f.code, f.path))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        codes(&[&CATALOG]),
        [(
            "MISMATCHED_OPERATOR_TYPE",
            "$.Statement[0].Condition.NumericLessThan.s3:prefix".to_owned()
        )]
    );
    assert_eq!(codes(&[]), []);
}
