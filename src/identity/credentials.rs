//! IAM users' long-term access keys, read from a credentials file of their
//! own (`--credentials FILE`, a Kubernetes Secret; never in the bundle).
//!
//! The file holds what `aws iam create-access-key` prints, one object or a
//! list of them:
//!
//! ```json
//! [{"AccessKey": {"UserName": "alice", "AccessKeyId": "AKIA...",
//!                 "Status": "Active", "SecretAccessKey": "...",
//!                 "CreateDate": "2026-01-01T00:00:00Z"}},
//!  {"AccessKey": {...}, "AccountId": "111122223333"}]
//! ```
//!
//! Beside `AccessKey`, an entry may say which user it belongs to when the
//! name alone is ambiguous: `AccountId` (the user of that name in that
//! account) or `UserArn` (that exact user). A name found in several
//! accounts without either is refused at request time, never guessed.
//!
//! A file is accepted whole or not at all. Secrets are kept in [`Secret`],
//! whose `Debug` is redacted; no error message quotes the file's values
//! (serde's messages may, so only the JSON path and the kind of error are
//! reported).

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use serde::Deserialize;

use crate::bundle::Snapshot;

/// Largest credentials file read.
pub const MAX_CREDENTIALS_BYTES: u64 = 4 << 20;
/// Signing keys kept per access key (dates × regions × services).
const SIGNING_KEYS_PER_KEY: usize = 8;

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("credentials file: {0}")]
    Read(String),
    #[error("credentials file is larger than {MAX_CREDENTIALS_BYTES} bytes")]
    TooLarge,
    #[error("credentials file at `{path}`: {kind} (line {line}, column {column})")]
    Json {
        path: String,
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("credentials file at `{path}`: {source}")]
    Invalid { path: String, source: EntryError },
}

/// Why an entry of a credentials file was refused. No message quotes the
/// entry's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error(
        "`AccessKey.AccessKeyId` is not an access key id (up to 128 upper-case letters and digits)"
    )]
    KeyId,
    #[error(
        "`AccessKey.AccessKeyId` is a temporary key id (ASIA...); this file holds long-term keys"
    )]
    TemporaryKeyId,
    #[error("`AccessKey.SecretAccessKey` is empty or too long")]
    Secret,
    #[error("`AccessKey.UserName` is not an IAM user name")]
    UserName,
    #[error("give `AccountId` or `UserArn`, not both")]
    AccountAndArn,
    #[error("`AccountId` is not a 12-digit account id")]
    AccountId,
    #[error("`UserArn` is not the ARN of the IAM user `UserName` names")]
    UserArn,
    #[error("the same access key id is listed twice")]
    Duplicate,
}

/// Why a verified key names no principal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("the key's user is not in the bundle")]
    NoSuchUser,
    #[error(
        "the key's user name is in several accounts of the bundle; give the entry an `AccountId` or `UserArn`"
    )]
    Ambiguous,
}

/// `Active` or `Inactive`, as IAM reports a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

/// A secret access key; never printed.
pub struct Secret(Box<str>);

impl Secret {
    /// The secret, for deriving signing keys only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One signing key derived from a secret, for one date, region and service.
struct SigningKey {
    date: [u8; 8],
    region: Box<str>,
    service: Box<str>,
    key: [u8; 32],
}

/// One access key and whom it belongs to.
pub struct AccessKey {
    pub access_key_id: String,
    pub user_name: String,
    pub status: KeyStatus,
    /// `AccountId` beside the AWS shape, if given.
    pub account_id: Option<String>,
    /// `UserArn` beside the AWS shape, if given.
    pub user_arn: Option<String>,
    secret: Secret,
    /// Signing keys already derived (a key signs with the same date, region
    /// and service all day long).
    signing_keys: RwLock<Vec<SigningKey>>,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .field("account_id", &self.account_id)
            .field("user_arn", &self.user_arn)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// The signing key for `date` (`YYYYMMDD`), `region` and `service`,
    /// derived by `derive` on first use and kept.
    pub(crate) fn signing_key(
        &self,
        date: &[u8; 8],
        region: &str,
        service: &str,
        derive: impl FnOnce(&Secret) -> [u8; 32],
    ) -> [u8; 32] {
        let matches =
            |k: &SigningKey| &k.date == date && &*k.region == region && &*k.service == service;
        if let Ok(keys) = self.signing_keys.read()
            && let Some(k) = keys.iter().find(|k| matches(k))
        {
            return k.key;
        }
        let key = derive(&self.secret);
        // A poisoned lock only loses the cache.
        if let Ok(mut keys) = self.signing_keys.write()
            && !keys.iter().any(matches)
        {
            if keys.len() >= SIGNING_KEYS_PER_KEY {
                keys.remove(0);
            }
            keys.push(SigningKey {
                date: *date,
                region: region.into(),
                service: service.into(),
                key,
            });
        }
        key
    }

    /// The principal ARN this key signs as, from the bundle's users.
    pub fn resolve_user<'s>(&self, snapshot: &'s Snapshot) -> Result<&'s str, ResolveError> {
        resolve_user(
            snapshot.users_named(&self.user_name),
            self.account_id.as_deref(),
            self.user_arn.as_deref(),
        )
    }
}

/// Picks the one user a key belongs to among the users of its name
/// (`(account, ARN)` pairs).
pub fn resolve_user<'s>(
    named: impl Iterator<Item = (&'s str, &'s str)>,
    account_id: Option<&str>,
    user_arn: Option<&str>,
) -> Result<&'s str, ResolveError> {
    let mut found = None;
    for (account, arn) in named {
        let wanted = match (user_arn, account_id) {
            (Some(want), _) => arn == want,
            (None, Some(want)) => account == want,
            (None, None) => true,
        };
        if wanted {
            if found.is_some() {
                return Err(ResolveError::Ambiguous);
            }
            found = Some(arn);
        }
    }
    found.ok_or(ResolveError::NoSuchUser)
}

/// Every access key of a credentials file, by key id.
#[derive(Debug, Default)]
pub struct CredentialStore {
    keys: HashMap<String, AccessKey>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileShape {
    One(Box<Entry>),
    Many(Vec<Entry>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Entry {
    access_key: AwsAccessKey,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    user_arn: Option<String>,
}

/// The `AccessKey` object of `aws iam create-access-key`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AwsAccessKey {
    user_name: String,
    access_key_id: String,
    status: KeyStatus,
    secret_access_key: String,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "accepted as `create-access-key` prints it; not used"
    )]
    create_date: Option<String>,
}

impl CredentialStore {
    /// No keys: every signed request is refused.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses and checks a credentials file's content.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CredentialsError> {
        let entries = parse(bytes)?;
        let mut keys = HashMap::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let key = check_entry(e).map_err(|source| CredentialsError::Invalid {
                path: format!("$[{i}]"),
                source,
            })?;
            if keys.contains_key(&key.access_key_id) {
                return Err(CredentialsError::Invalid {
                    path: format!("$[{i}].AccessKey.AccessKeyId"),
                    source: EntryError::Duplicate,
                });
            }
            keys.insert(key.access_key_id.clone(), key);
        }
        Ok(Self { keys })
    }

    /// The key with this id, active or not.
    pub fn get(&self, access_key_id: &str) -> Option<&AccessKey> {
        self.keys.get(access_key_id)
    }

    /// How many keys the file holds, and how many of them are active.
    pub fn counts(&self) -> (usize, usize) {
        let active = self
            .keys
            .values()
            .filter(|k| k.status == KeyStatus::Active)
            .count();
        (self.keys.len(), active)
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<Entry>, CredentialsError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, FileShape>(de) {
        Ok(FileShape::One(e)) => Ok(vec![*e]),
        Ok(FileShape::Many(v)) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde's message may quote a value (a secret): report only
            // where and what kind of error it was.
            let kind = match inner.classify() {
                serde_json::error::Category::Syntax => "not valid JSON",
                serde_json::error::Category::Eof => "truncated JSON",
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Data => {
                    "not the shape `aws iam create-access-key` prints (an object with `AccessKey` {UserName, AccessKeyId, Status: Active|Inactive, SecretAccessKey, CreateDate}, optionally `AccountId` or `UserArn`), or a list of them"
                }
            };
            Err(CredentialsError::Json {
                path,
                kind,
                line: inner.line(),
                column: inner.column(),
            })
        }
    }
}

fn check_entry(e: Entry) -> Result<AccessKey, EntryError> {
    let k = e.access_key;
    let id_ok = (1..=128).contains(&k.access_key_id.len())
        && k.access_key_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !id_ok {
        return Err(EntryError::KeyId);
    }
    if k.access_key_id.starts_with("ASIA") {
        return Err(EntryError::TemporaryKeyId);
    }
    if k.secret_access_key.is_empty() || k.secret_access_key.len() > 256 {
        return Err(EntryError::Secret);
    }
    let name_ok = !k.user_name.is_empty()
        && k.user_name.len() <= 64
        && k.user_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !name_ok {
        return Err(EntryError::UserName);
    }
    if e.account_id.is_some() && e.user_arn.is_some() {
        return Err(EntryError::AccountAndArn);
    }
    if let Some(a) = &e.account_id
        && !crate::policy::AccountId::is_valid(a)
    {
        return Err(EntryError::AccountId);
    }
    if let Some(arn) = &e.user_arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let resource = parts.get(5).copied().unwrap_or_default();
        let ok = parts.len() == 6
            && parts.first() == Some(&"arn")
            && parts.get(2) == Some(&"iam")
            && resource.starts_with("user/")
            && resource.rsplit('/').next() == Some(k.user_name.as_str());
        if !ok {
            return Err(EntryError::UserArn);
        }
    }
    Ok(AccessKey {
        access_key_id: k.access_key_id,
        user_name: k.user_name,
        status: k.status,
        account_id: e.account_id,
        user_arn: e.user_arn,
        secret: Secret(k.secret_access_key.into_boxed_str()),
        signing_keys: RwLock::new(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn entry(id: &str, status: &str) -> serde_json::Value {
        serde_json::json!({"AccessKey": {"UserName": "alice", "AccessKeyId": id,
            "Status": status, "SecretAccessKey": SECRET, "CreateDate": "2026-01-01T00:00:00Z"}})
    }

    #[test]
    fn reads_one_object_or_a_list() {
        let one = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        let store = CredentialStore::from_json(one.to_string().as_bytes()).unwrap();
        assert_eq!(store.counts(), (1, 1));
        let list = serde_json::json!([
            entry("AKIAIOSFODNN7EXAMPLE", "Active"),
            entry("AKIAI44QH8DHBEXAMPLE", "Inactive")
        ]);
        let store = CredentialStore::from_json(list.to_string().as_bytes()).unwrap();
        assert_eq!(store.counts(), (2, 1));
        let k = store.get("AKIAI44QH8DHBEXAMPLE").unwrap();
        assert_eq!(k.status, KeyStatus::Inactive);
        assert_eq!(k.user_name, "alice");
    }

    #[test]
    fn refuses_bad_files_without_quoting_secrets() {
        let dup = serde_json::json!([
            entry("AKIAIOSFODNN7EXAMPLE", "Active"),
            entry("AKIAIOSFODNN7EXAMPLE", "Active")
        ]);
        let mut bad_status = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        bad_status["AccessKey"]["Status"] = SECRET.into();
        let mut secret_number = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        secret_number["AccessKey"]["SecretAccessKey"] = 12345.into();
        let mut both = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        both["AccountId"] = "111122223333".into();
        both["UserArn"] = "arn:aws:iam::111122223333:user/alice".into();
        let mut wrong_arn = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        wrong_arn["UserArn"] = "arn:aws:iam::111122223333:user/bob".into();
        let mut unknown = entry("AKIAIOSFODNN7EXAMPLE", "Active");
        unknown["Secret"] = SECRET.into();
        let cases = [
            dup.to_string(),
            bad_status.to_string(),
            secret_number.to_string(),
            both.to_string(),
            wrong_arn.to_string(),
            unknown.to_string(),
            entry("ASIAIOSFODNN7EXAMPLE", "Active").to_string(),
            format!("[{{\"AccessKey\": {{\"SecretAccessKey\": \"{SECRET}\""),
            "{}".into(),
        ];
        for c in cases {
            let e = CredentialStore::from_json(c.as_bytes()).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("12345"), "{text}");
        }
        let why = |v: &serde_json::Value| match CredentialStore::from_json(v.to_string().as_bytes())
        {
            Err(CredentialsError::Invalid { source, .. }) => source,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(&dup), EntryError::Duplicate);
        assert_eq!(why(&both), EntryError::AccountAndArn);
        assert_eq!(why(&wrong_arn), EntryError::UserArn);
        assert_eq!(
            why(&entry("ASIAIOSFODNN7EXAMPLE", "Active")),
            EntryError::TemporaryKeyId
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let store = CredentialStore::from_json(
            entry("AKIAIOSFODNN7EXAMPLE", "Active")
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let k = store.get("AKIAIOSFODNN7EXAMPLE").unwrap();
        k.signing_key(b"20260101", "us-east-1", "ec2", |_| [7; 32]);
        for text in [format!("{store:?}"), format!("{k:?}"), format!("{k:#?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains("wJalr"), "{text}");
            assert!(text.contains("AKIAIOSFODNN7EXAMPLE"));
        }
    }

    #[test]
    fn signing_keys_are_derived_once_per_scope() {
        let store = CredentialStore::from_json(
            entry("AKIAIOSFODNN7EXAMPLE", "Active")
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let k = store.get("AKIAIOSFODNN7EXAMPLE").unwrap();
        let mut derived = 0;
        for _ in 0..3 {
            k.signing_key(b"20260101", "us-east-1", "ec2", |_| {
                derived += 1;
                [1; 32]
            });
        }
        assert_eq!(derived, 1);
        let other = k.signing_key(b"20260102", "us-east-1", "ec2", |_| [2; 32]);
        assert_eq!(other, [2; 32]);
        for day in 0..20u8 {
            let date = [
                b'2',
                b'0',
                b'2',
                b'6',
                b'0',
                b'1',
                b'0' + day / 10,
                b'0' + day % 10,
            ];
            k.signing_key(&date, "us-east-1", "ec2", |_| [day; 32]);
        }
        assert!(k.signing_keys.read().unwrap().len() <= SIGNING_KEYS_PER_KEY);
    }

    #[test]
    fn users_resolve_only_when_unambiguous() {
        let a = ("111122223333", "arn:aws:iam::111122223333:user/alice");
        let b = ("444455556666", "arn:aws:iam::444455556666:user/team/alice");
        assert_eq!(resolve_user([a].into_iter(), None, None), Ok(a.1));
        assert_eq!(
            resolve_user([a, b].into_iter(), None, None),
            Err(ResolveError::Ambiguous)
        );
        assert_eq!(
            resolve_user([a, b].into_iter(), Some("444455556666"), None),
            Ok(b.1)
        );
        assert_eq!(resolve_user([a, b].into_iter(), None, Some(a.1)), Ok(a.1));
        assert_eq!(
            resolve_user([a].into_iter(), Some("999999999999"), None),
            Err(ResolveError::NoSuchUser)
        );
        assert_eq!(
            resolve_user(std::iter::empty(), None, None),
            Err(ResolveError::NoSuchUser)
        );
    }
}
