//! Encoded authorization failure messages, as EC2 puts them in an
//! `UnauthorizedOperation` error and `sts:DecodeAuthorizationMessage`
//! returns them.
//!
//! The decoded document has AWS's shape: `allowed`, `explicitDeny`,
//! `matchedStatements.items`, `failures.items`, and `context` with the
//! principal, action, resource and the request's condition keys
//! (`conditions.items[].{key, values.items[].value}`). iamgate adds an
//! `iamgate` object with the decision id, revision and reason.
//!
//! Encoding: `base64url(version ‖ nonce ‖ XChaCha20-Poly1305(json))`,
//! without padding, under a 32-byte key with a fixed associated-data label.
//! Only holders of the key can read a message or forge one; a message under
//! another key, or altered in any way, does not decode.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::engine::Context;
use crate::policy::variables::ValueRef;
use crate::service::catalog::Catalog;

/// Version byte in front of every encoded message.
const VERSION: u8 = 1;
/// Bytes of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Associated data binding ciphertexts to this use.
const AAD: &[u8] = b"iamgate authorization failure message v1";
/// Longest encoded message accepted for decoding.
const MAX_ENCODED: usize = 256 * 1024;

/// Why a key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read message key file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "message key must be 32 bytes written as 64 hex digits or base64 (got {0} characters that are neither)"
    )]
    Format(usize),
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message is not base64url")]
    Encoding,
    #[error("the message is too short or too long")]
    Length,
    #[error("unknown message version {0}")]
    Version(u8),
    #[error("the message does not authenticate under this key")]
    Authentication,
    #[error("the decrypted message is not valid JSON: {0}")]
    Json(String),
    #[error("the system random number generator failed")]
    Random,
}

/// The secret key that encrypts and authenticates messages.
#[derive(Clone)]
pub struct MessageKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(..)")
    }
}

impl MessageKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let key = Key::from(*bytes);
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let bytes = <[u8; 32]>::try_generate().map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Parses 32 bytes written as 64 hex digits or base64 (standard or
    /// URL-safe alphabet, padded or not); surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex_decode(t)
        } else {
            [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
        };
        let bytes: [u8; 32] = bytes
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::Format(t.len()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Reads a key file (see [`MessageKey::parse`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The key in `path`, or, without one, a fresh random key (logged as a
    /// warning: its messages cannot be decoded after a restart).
    pub fn load_or_generate(path: Option<&Path>) -> Result<Self, KeyError> {
        match path {
            Some(p) => Self::from_file(p),
            None => {
                tracing::warn!(
                    "no --message-key-file: encoded authorization failure messages use an ephemeral random key and cannot be decoded after a restart"
                );
                Self::generate()
            }
        }
    }

    /// Encrypts a message document; each call draws a fresh nonce.
    pub fn encode(&self, message: &AuthorizationMessage) -> Result<String, MessageError> {
        let json = serde_json::to_vec(message).map_err(|e| MessageError::Json(e.to_string()))?;
        let nonce = XNonce::try_generate().map_err(|_| MessageError::Random)?;
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &json,
                    aad: AAD,
                },
            )
            .map_err(|_| MessageError::Authentication)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts and authenticates an encoded message, returning its JSON
    /// document.
    pub fn decode(&self, encoded: &str) -> Result<serde_json::Value, MessageError> {
        let encoded = encoded.trim();
        if encoded.len() > MAX_ENCODED {
            return Err(MessageError::Length);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| MessageError::Encoding)?;
        let (&version, rest) = raw.split_first().ok_or(MessageError::Length)?;
        if version != VERSION {
            return Err(MessageError::Version(version));
        }
        if rest.len() < NONCE_LEN + 16 {
            return Err(MessageError::Length);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| MessageError::Length)?;
        let json = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .map_err(|_| MessageError::Authentication)?;
        serde_json::from_slice(&json).map_err(|e| MessageError::Json(e.to_string()))
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

/// AWS's list wrapper: `{"items": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

/// What `sts:DecodeAuthorizationMessage` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationMessage {
    pub allowed: bool,
    pub explicit_deny: bool,
    pub matched_statements: Items<MatchedStatement>,
    pub failures: Items<String>,
    pub context: MessageContext,
    /// iamgate's own fields.
    pub iamgate: IamgateFields,
}

/// A statement that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchedStatement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_id: Option<String>,
    /// `ALLOW` or `DENY`.
    pub effect: String,
    /// The policy's id in the bundle.
    pub policy: String,
    /// `identity`, `boundary`, `session`, `resource`, `scp`, `rcp`.
    pub policy_type: String,
    /// 0-based index of the statement in its policy.
    pub statement_index: usize,
}

/// The request the message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContext {
    pub principal: MessagePrincipal,
    pub action: String,
    pub resource: String,
    pub conditions: Items<Condition>,
}

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePrincipal {
    /// The last part of the ARN (user, role or session name).
    pub name: String,
    pub arn: String,
}

/// One context key and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub key: String,
    pub values: Items<ConditionValue>,
}

/// One value of a context key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionValue {
    pub value: String,
}

/// Fields iamgate adds to AWS's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IamgateFields {
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: String,
    pub reason: String,
    pub decision_id: String,
    pub revision: String,
}

impl AuthorizationMessage {
    /// The message for one decided request; condition keys are written in
    /// AWS's casing where a global key or one of `catalogs` (the served
    /// services' condition keys) names them.
    pub fn new(
        request: &crate::engine::AuthzRequest,
        answer: &crate::engine::AuthzAnswer,
        decision_id: &str,
        catalogs: &[&Catalog],
    ) -> Self {
        let explicit = answer.decision == crate::engine::Outcome::ExplicitDeny;
        let allowed = answer.decision == crate::engine::Outcome::Allowed;
        let effect = if allowed { "ALLOW" } else { "DENY" };
        Self {
            allowed,
            explicit_deny: explicit,
            matched_statements: Items {
                items: answer
                    .matched
                    .iter()
                    .map(|m| MatchedStatement {
                        statement_id: m.sid.as_deref().map(str::to_owned),
                        effect: effect.to_owned(),
                        policy: m.policy.to_string(),
                        policy_type: m.policy_type.short_name().to_owned(),
                        statement_index: m.statement,
                    })
                    .collect(),
            },
            failures: Items::default(),
            context: MessageContext {
                principal: MessagePrincipal {
                    name: request
                        .principal_arn
                        .rsplit(['/', ':'])
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    arn: request.principal_arn.clone(),
                },
                action: request.action.clone(),
                resource: request.resource.clone(),
                conditions: conditions(&request.context, catalogs),
            },
            iamgate: IamgateFields {
                decision: answer.decision.as_str().to_owned(),
                reason: answer.reason.to_string(),
                decision_id: decision_id.to_owned(),
                revision: answer.revision.to_string(),
            },
        }
    }
}

/// The context as AWS lists it, keys in AWS's casing where known, sorted.
fn conditions(context: &Context, catalogs: &[&Catalog]) -> Items<Condition> {
    let mut items: Vec<Condition> = context
        .iter()
        .map(|(key, value)| Condition {
            key: canonical_key(key, catalogs),
            values: Items {
                items: match value.value() {
                    ValueRef::One(v) => vec![ConditionValue {
                        value: v.to_owned(),
                    }],
                    ValueRef::Many(vs) => vs
                        .iter()
                        .map(|v| ConditionValue { value: v.clone() })
                        .collect(),
                },
            },
        })
        .collect();
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Items { items }
}

/// Global condition keys in AWS's casing (context keys are stored in lower
/// case).
const GLOBAL_KEYS: &[&str] = &[
    "aws:CalledVia",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:MultiFactorAuthPresent",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:PrincipalTag/",
    "aws:PrincipalType",
    "aws:RequestTag/",
    "aws:RequestedRegion",
    "aws:ResourceAccount",
    "aws:ResourceOrgID",
    "aws:ResourceTag/",
    "aws:SecureTransport",
    "aws:SourceIp",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:TagKeys",
    "aws:userid",
    "aws:username",
    "aws:ViaAWSService",
];

/// A lower-case context key in AWS's casing: global keys from
/// [`GLOBAL_KEYS`], a service's keys from the catalog of the service its
/// prefix names; the part after a `/` (a tag key) is kept as given.
pub fn canonical_key(lower: &str, catalogs: &[&Catalog]) -> String {
    let (head, tail) = match lower.split_once('/') {
        Some((h, t)) => (format!("{h}/"), Some(t)),
        None => (lower.to_owned(), None),
    };
    let known = GLOBAL_KEYS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&head))
        .map(|k| (*k).to_owned())
        .or_else(|| {
            let prefix = lower.split(':').next()?;
            let def = catalogs
                .iter()
                .find(|c| c.prefix.eq_ignore_ascii_case(prefix))?
                .condition_key(lower)?;
            let name = match tail {
                Some(_) => def.name.split_once('/').map(|(h, _)| format!("{h}/"))?,
                None => def.name.to_owned(),
            };
            name.eq_ignore_ascii_case(&head).then_some(name)
        });
    match (known, tail) {
        (Some(k), Some(t)) => format!("{k}{t}"),
        (Some(k), None) => k,
        (None, _) => lower.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;
    use crate::engine::{AuthzAnswer, AuthzRequest, MatchedInfo, Reason};
    use crate::policy::PolicyKind;

    fn sample() -> AuthorizationMessage {
        let req = AuthzRequest {
            principal_arn: "arn:aws:iam::111111111111:user/engineering/bob".into(),
            action: "ec2:RunInstances".into(),
            resource: "arn:aws:ec2:us-east-1:111111111111:instance/*".into(),
            context: Context::new()
                .with("ec2:InstanceType", "t3.micro")
                .with("aws:RequestTag/Team", "blue")
                .with("aws:SourceIp", "10.0.0.1"),
            ..Default::default()
        };
        let answer = AuthzAnswer {
            decision: Outcome::ExplicitDeny,
            reason: Reason::ExplicitDeny(PolicyKind::Identity).into(),
            matched: vec![MatchedInfo {
                policy: "bob#deny".into(),
                policy_type: PolicyKind::Identity,
                statement: 1,
                sid: Some("NoBig".into()),
            }],
            missing_context_keys: Vec::new(),
            revision: "rev-1".into(),
        };
        AuthorizationMessage::new(&req, &answer, "d-1", &[&crate::ec2::catalog::CATALOG])
    }

    #[test]
    fn round_trip_and_shape() {
        let key = MessageKey::generate().unwrap();
        let m = sample();
        let enc = key.encode(&m).unwrap();
        assert!(
            enc.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let doc = key.decode(&enc).unwrap();
        assert_eq!(doc["allowed"], false);
        assert_eq!(doc["explicitDeny"], true);
        assert_eq!(doc["matchedStatements"]["items"][0]["statementId"], "NoBig");
        assert_eq!(doc["matchedStatements"]["items"][0]["effect"], "DENY");
        assert_eq!(doc["failures"]["items"], serde_json::json!([]));
        assert_eq!(doc["context"]["principal"]["name"], "bob");
        assert_eq!(doc["context"]["action"], "ec2:RunInstances");
        let keys: Vec<_> = doc["context"]["conditions"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            keys,
            ["aws:RequestTag/team", "aws:SourceIp", "ec2:InstanceType"]
        );
        assert_eq!(doc["iamgate"]["decisionId"], "d-1");
        let back: AuthorizationMessage = serde_json::from_value(doc).unwrap();
        assert_eq!(back, m);
        // Fresh nonce every time.
        assert_ne!(key.encode(&m).unwrap(), enc);
    }

    #[test]
    fn other_keys_and_tampering_do_not_decode() {
        let key = MessageKey::from_bytes(&[7; 32]);
        let enc = key.encode(&sample()).unwrap();
        let other = MessageKey::from_bytes(&[8; 32]);
        assert_eq!(other.decode(&enc), Err(MessageError::Authentication));
        let mut bytes = URL_SAFE_NO_PAD.decode(&enc).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            key.decode(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(MessageError::Authentication)
        );
        bytes[0] = 9;
        assert_eq!(
            key.decode(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(MessageError::Version(9))
        );
        assert_eq!(key.decode("!!!"), Err(MessageError::Encoding));
        assert_eq!(key.decode("AQ"), Err(MessageError::Length));
        assert_eq!(key.decode(""), Err(MessageError::Length));
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let enc = MessageKey::from_bytes(&bytes.clone().try_into().unwrap())
            .encode(&sample())
            .unwrap();
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            format!("  {hex}\n"),
            STANDARD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
        ] {
            let key = MessageKey::parse(&text).unwrap();
            assert!(key.decode(&enc).is_ok(), "{text}");
        }
        assert!(matches!(
            MessageKey::parse("abcd"),
            Err(KeyError::Format(_))
        ));
        assert!(matches!(
            MessageKey::parse(&STANDARD.encode([1u8; 31])),
            Err(KeyError::Format(_))
        ));
        assert_eq!(
            format!("{:?}", MessageKey::from_bytes(&[1; 32])),
            "MessageKey(..)"
        );
    }

    #[test]
    fn canonical_keys() {
        use crate::service::catalog::{ConditionKeyDef, ConditionKeyType};
        // Another service's catalog, as the registry hands them over.
        static APP_KEYS: [ConditionKeyDef; 1] = [ConditionKeyDef {
            name: "app:TicketId",
            value_type: ConditionKeyType::String,
            description: "",
        }];
        static APP: Catalog = Catalog {
            prefix: "app",
            name: "App",
            source_version: "test",
            actions: &[],
            resource_types: &[],
            condition_keys: &APP_KEYS,
            condition_key_patterns: &[],
        };
        let both: &[&Catalog] = &[&crate::ec2::catalog::CATALOG, &APP];
        let key = |k: &str| canonical_key(k, both);
        assert_eq!(key("aws:sourceip"), "aws:SourceIp");
        assert_eq!(key("aws:requesttag/team"), "aws:RequestTag/team");
        assert_eq!(key("ec2:instancetype"), "ec2:InstanceType");
        assert_eq!(key("ec2:resourcetag/team"), "ec2:ResourceTag/team");
        assert_eq!(key("app:custom"), "app:custom");
        // Each service's keys from its own catalog, and only when it is served.
        assert_eq!(key("app:ticketid"), "app:TicketId");
        assert_eq!(
            canonical_key("app:ticketid", &[&crate::ec2::catalog::CATALOG]),
            "app:ticketid"
        );
    }
}
