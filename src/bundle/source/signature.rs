//! Signed bundles: a manifest of every file's SHA-256 and detached Ed25519
//! signatures over it, stored in the bundle as `.signature.json` (a hidden
//! entry, so readers that do not verify skip it).
//!
//! ```json
//! {"format": "iamgate-bundle-signature/v1",
//!  "manifest": "<sha256 hex>  <path>\n...",
//!  "signatures": [{"keyid": "ed25519:<16 hex>", "signature": "<base64>"}]}
//! ```
//! The manifest is the text `sha256sum` prints (sorted by path); what is
//! signed is [`DOMAIN`] followed by it, so a signature cannot be replayed as
//! anything else. A key id is the first 16 hex digits of the SHA-256 of
//! the raw public key, so any holder of the public key computes it.
//!
//! Verification checks the signature first, then that the bundle holds
//! exactly the files the manifest lists (none added, none removed, none
//! changed). This module owns the format and the keys; it does not read
//! archives or fetch anything.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::bundle::files::BundleFiles;

/// The name of the signature file inside a bundle.
pub const SIGNATURE_FILE: &str = ".signature.json";
/// The `format` of a signature file.
pub const FORMAT: &str = "iamgate-bundle-signature/v1";
/// Prefixed to the manifest before signing (domain separation).
pub const DOMAIN: &[u8] = b"iamgate-bundle-manifest/v1\n";
/// Largest signature file read (a manifest line is about 100 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 16 * 1024 * 1024;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the
/// 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a bundle's signature was refused. The variant names are the
/// `reason` label of the refusal metric.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the bundle is not signed (no `{SIGNATURE_FILE}` or no signature in it)")]
    Unsigned,
    #[error("`{SIGNATURE_FILE}`: {0}")]
    Malformed(String),
    #[error("no signature by a trusted key: signed by [{}], trusted [{}]", .signed.join(", "), .trusted.join(", "))]
    UnknownKey {
        signed: Vec<String>,
        trusted: Vec<String>,
    },
    #[error("the signature by key `{0}` does not verify")]
    BadSignature(String),
    #[error("the bundle does not match its signed manifest: {0}")]
    Tampered(String),
}

impl SignatureError {
    /// A short, bounded label (metrics, JSON).
    pub fn label(&self) -> &'static str {
        match self {
            SignatureError::Unsigned => "unsigned",
            SignatureError::Malformed(_) => "malformed",
            SignatureError::UnknownKey { .. } => "unknown_key",
            SignatureError::BadSignature(_) => "bad_signature",
            SignatureError::Tampered(_) => "tampered",
        }
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read key `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("key `{path}`: {source}")]
    NotPublicKey { path: String, source: NotEd25519 },
    #[error("key `{path}`: not an Ed25519 private key in PKCS#8: {source}")]
    NotPrivateKey {
        path: String,
        source: ring::error::KeyRejected,
    },
}

/// DER that is not an Ed25519 SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("not an Ed25519 public key (expected `openssl pkey -pubout` output)")]
pub struct NotEd25519;

/// An Ed25519 public key trusted to sign bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyKey {
    pub key_id: String,
    raw: [u8; 32],
}

/// The id of a raw Ed25519 public key.
pub fn key_id(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    format!("ed25519:{}", hex(digest.get(..8).unwrap_or_default()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl VerifyKey {
    /// Reads a public key PEM (`openssl pkey -pubout`: SubjectPublicKeyInfo).
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let der =
            SubjectPublicKeyInfoDer::from_pem_file(path).map_err(|source| KeyError::Read {
                path: shown.clone(),
                source,
            })?;
        Self::from_spki_der(der.as_ref()).map_err(|source| KeyError::NotPublicKey {
            path: shown,
            source,
        })
    }

    /// An Ed25519 SubjectPublicKeyInfo in DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, NotEd25519> {
        let raw = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(NotEd25519)?;
        Ok(Self {
            key_id: key_id(&raw),
            raw,
        })
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

/// An Ed25519 private key that signs bundles.
pub struct SigningKey {
    pub key_id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a private key PEM (`openssl genpkey -algorithm ed25519`:
    /// PKCS#8 v1, or v2 with the public key).
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der()).map_err(
            |source| KeyError::NotPrivateKey {
                path: shown,
                source,
            },
        )?;
        Ok(Self {
            key_id: key_id(pair.public_key().as_ref()),
            pair,
        })
    }
}

/// One signature in a signature file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub keyid: String,
    /// Base64 (standard, padded).
    pub signature: String,
}

/// The `.signature.json` of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub format: String,
    pub manifest: String,
    pub signatures: Vec<Signature>,
}

/// The manifest of a bundle's files: `<sha256 hex>  <path>` lines, sorted.
pub fn manifest(files: &BundleFiles) -> String {
    files
        .iter()
        .map(|(path, text)| format!("{}  {path}\n", hex(&Sha256::digest(text.as_bytes()))))
        .collect()
}

fn signed_message(manifest: &str) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(manifest.as_bytes());
    m
}

/// Builds the signature file of a bundle, signed by every key given (none:
/// a manifest only, which a verifying server refuses as unsigned).
pub fn sign(files: &BundleFiles, keys: &[SigningKey]) -> SignatureFile {
    let manifest = manifest(files);
    let message = signed_message(&manifest);
    let signatures = keys
        .iter()
        .map(|k| Signature {
            keyid: k.key_id.clone(),
            signature: base64::engine::general_purpose::STANDARD
                .encode(k.pair.sign(&message).as_ref()),
        })
        .collect();
    SignatureFile {
        format: FORMAT.to_owned(),
        manifest,
        signatures,
    }
}

fn parse_manifest(manifest: &str) -> Result<BTreeMap<&str, &str>, SignatureError> {
    let mut out = BTreeMap::new();
    for (n, line) in manifest.lines().enumerate() {
        let bad = || SignatureError::Malformed(format!("manifest line {}: `{line}`", n + 1));
        let (digest, path) = line.split_once("  ").ok_or_else(bad)?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if out.insert(path, digest).is_some() {
            return Err(SignatureError::Malformed(format!(
                "manifest lists `{path}` twice"
            )));
        }
    }
    Ok(out)
}

/// Checks a bundle against its signature file: a signature by one of
/// `keys` must verify, and the files must be exactly the manifest's.
/// Returns the id of the key whose signature verified.
pub fn verify(
    files: &BundleFiles,
    signature_file: Option<&str>,
    keys: &[VerifyKey],
) -> Result<String, SignatureError> {
    let text = signature_file.ok_or(SignatureError::Unsigned)?;
    let parsed: SignatureFile =
        serde_json::from_str(text).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if parsed.format != FORMAT {
        return Err(SignatureError::Malformed(format!(
            "unknown format `{}` (expected `{FORMAT}`)",
            parsed.format
        )));
    }
    if parsed.signatures.is_empty() {
        return Err(SignatureError::Unsigned);
    }
    let message = signed_message(&parsed.manifest);
    let mut verified = None;
    let mut failed = None;
    for sig in &parsed.signatures {
        let Some(key) = keys.iter().find(|k| k.key_id == sig.keyid) else {
            continue;
        };
        let ok = base64::engine::general_purpose::STANDARD
            .decode(&sig.signature)
            .is_ok_and(|bytes| key.verify(&message, &bytes));
        if ok {
            verified = Some(key.key_id.clone());
            break;
        }
        failed.get_or_insert_with(|| key.key_id.clone());
    }
    let key_id = match (verified, failed) {
        (Some(id), _) => id,
        (None, Some(id)) => return Err(SignatureError::BadSignature(id)),
        (None, None) => {
            return Err(SignatureError::UnknownKey {
                signed: parsed.signatures.iter().map(|s| s.keyid.clone()).collect(),
                trusted: keys.iter().map(|k| k.key_id.clone()).collect(),
            });
        }
    };
    let listed = parse_manifest(&parsed.manifest)?;
    let actual = manifest(files);
    let actual = parse_manifest(&actual)?;
    let mut problems = Vec::new();
    for (path, digest) in &actual {
        match listed.get(path) {
            None => problems.push(format!("`{path}` added")),
            Some(d) if !d.eq_ignore_ascii_case(digest) => {
                problems.push(format!("`{path}` changed"))
            }
            Some(_) => {}
        }
    }
    for path in listed.keys() {
        if !actual.contains_key(path) {
            problems.push(format!("`{path}` removed"));
        }
    }
    if problems.is_empty() {
        Ok(key_id)
    } else {
        Err(SignatureError::Tampered(problems.join(", ")))
    }
}

/// A fresh key pair, for tests.
#[cfg(test)]
pub(crate) fn test_keypair() -> (SigningKey, VerifyKey) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let raw: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&raw);
    let verify = VerifyKey::from_spki_der(&spki).unwrap();
    (
        SigningKey {
            key_id: key_id(&raw),
            pair,
        },
        verify,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (SigningKey, VerifyKey) {
        test_keypair()
    }

    #[test]
    fn key_files_that_are_not_ed25519_are_refused_with_their_cause() {
        let dir = std::env::temp_dir().join(format!("iamgate-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // PEM sections whose DER is no Ed25519 key.
        let public = dir.join("pub.pem");
        std::fs::write(
            &public,
            "-----BEGIN PUBLIC KEY-----\nAAAAAAAAAAAAAA==\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let e = VerifyKey::from_pem_file(&public).unwrap_err();
        assert!(matches!(e, KeyError::NotPublicKey { .. }), "{e}");
        assert!(e.to_string().contains("not an Ed25519 public key"), "{e}");
        let private = dir.join("key.pem");
        std::fs::write(
            &private,
            "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = SigningKey::from_pem_file(&private).err().unwrap();
        assert!(matches!(e, KeyError::NotPrivateKey { .. }), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn bundle() -> BundleFiles {
        BundleFiles::from_pairs([
            ("iam/1.json", "{}"),
            ("manifest.json", "{\"revision\":\"r\"}"),
        ])
    }

    #[test]
    fn issue_15_signed_bundles_verify_and_tampering_is_named() {
        let (signer, key) = keypair();
        let (_, other) = keypair();
        let sig = serde_json::to_string(&sign(&bundle(), &[signer])).unwrap();
        assert_eq!(
            verify(&bundle(), Some(&sig), std::slice::from_ref(&key)).unwrap(),
            key.key_id
        );
        // Rotation: any trusted key may have signed.
        assert!(verify(&bundle(), Some(&sig), &[other.clone(), key.clone()]).is_ok());
        assert_eq!(
            verify(&bundle(), Some(&sig), std::slice::from_ref(&other))
                .unwrap_err()
                .label(),
            "unknown_key"
        );
        assert_eq!(
            verify(&bundle(), None, std::slice::from_ref(&key)).unwrap_err(),
            SignatureError::Unsigned
        );
        let changed = BundleFiles::from_pairs([
            ("iam/1.json", "{ }"),
            ("manifest.json", "{\"revision\":\"r\"}"),
        ]);
        let added = BundleFiles::from_pairs([
            ("iam/1.json", "{}"),
            ("iam/2.json", "{}"),
            ("manifest.json", "{\"revision\":\"r\"}"),
        ]);
        let removed = BundleFiles::from_pairs([("iam/1.json", "{}")]);
        for (files, word) in [(changed, "changed"), (added, "added"), (removed, "removed")] {
            let err = verify(&files, Some(&sig), std::slice::from_ref(&key)).unwrap_err();
            assert_eq!(err.label(), "tampered");
            assert!(err.to_string().contains(word), "{err}");
        }
        // A manifest edited to match tampered files breaks the signature.
        let mut forged: SignatureFile = serde_json::from_str(&sig).unwrap();
        forged.manifest = manifest(&BundleFiles::from_pairs([("iam/1.json", "{ }")]));
        let forged = serde_json::to_string(&forged).unwrap();
        let err = verify(
            &BundleFiles::from_pairs([("iam/1.json", "{ }")]),
            Some(&forged),
            &[key],
        )
        .unwrap_err();
        assert_eq!(err.label(), "bad_signature");
    }
}
