//! The AWS identifiers every layer checks: an account id and a Region name,
//! each with exactly one parser, so that the bundle layout, the EC2 mapping,
//! the inventory API, the ext_authz front door, the engine's principals and
//! the policy parser cannot disagree about what is one.
//!
//! Rules (AWS General Reference, "AWS account identifiers" and "Regions and
//! endpoints"; the SDKs' `partitions.json` `regionRegex` per partition):
//! - account id: exactly 12 ASCII digits (`123456789012`); leading zeros are
//!   significant, so it is kept as text, never as a number.
//! - Region: two or more words of lower-case ASCII letters and a final
//!   number, joined by single `-` (`us-east-1`, `us-gov-west-1`,
//!   `eu-isoe-west-1`, `eusc-de-east-1`). Every partition's `regionRegex`
//!   is an instance of this shape (`^(us|eu|ap|...)-\w+-\d+$`,
//!   `^cn-\w+-\d+$`, `^us-gov-\w+-\d+$`, ...); the prefix is not checked
//!   against a list, so a Region that opens after this build is accepted.
//!   Nothing else is a Region: no upper case, no empty word, no `aws-global`
//!   pseudo-region, no wildcard.
//!
//! This module owns only the grammar; where an empty Region is allowed (an
//! IAM or S3 ARN) is for the caller to say.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a value is not an account id or a Region name. The value is quoted
/// as given (user input, in backticks).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// Not exactly 12 ASCII digits.
    #[error("`{0}` is not a 12-digit AWS account id")]
    Account(String),
    /// Not a Region name.
    #[error("`{0}` is not a Region name (such as `us-east-1`)")]
    Region(String),
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Whether `s` is an account id (see the module docs).
    pub fn is_valid(s: &str) -> bool {
        s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
    }

    /// Reads an account id; anything but 12 ASCII digits is refused.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Account(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Whether `s` is a Region name (see the module docs).
    pub fn is_valid(s: &str) -> bool {
        let mut words = s.split('-');
        let Some(number) = words.next_back() else {
            return false;
        };
        let mut count = 0;
        for word in words {
            if word.is_empty() || !word.bytes().all(|b| b.is_ascii_lowercase()) {
                return false;
            }
            count += 1;
        }
        count >= 2 && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
    }

    /// Reads a Region name; anything else is refused.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Region(s.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The partition the Region belongs to (`aws`, `aws-cn`, `aws-us-gov`,
    /// ...), from the prefixes of the SDKs' `partitions.json`.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.0)
    }
}

/// The partition of a Region name, from its prefix (`cn-` is `aws-cn`,
/// `us-gov-` is `aws-us-gov`, ...); `aws` for any other name. Callers that
/// hold an unchecked name use this; a [`Region`] has [`Region::partition`].
pub fn partition_of(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-iso-", "aws-iso"),
        ("us-isob-", "aws-iso-b"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

macro_rules! text_newtype {
    ($t:ty) => {
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                if Self::is_valid(&s) {
                    Ok(Self(s))
                } else {
                    Self::parse(&s)
                }
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_newtype!(AccountId);
text_newtype!(Region);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        for ok in ["123456789012", "000000000000", "999999999999"] {
            assert_eq!(AccountId::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            " 23456789012",
            "123456789012 ",
            "+23456789012",
            "-23456789012",
            "1234-5678-90",
            "１２３４５６７８９０１２",
            "aws",
            "*",
        ] {
            assert_eq!(
                AccountId::parse(bad),
                Err(IdError::Account(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-west-3",
            "ap-southeast-4",
            "il-central-1",
            "mx-central-1",
            "cn-northwest-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
            "eusc-de-east-1",
            "us-east-10",
        ] {
            assert_eq!(Region::parse(ok).unwrap().as_str(), ok, "{ok}");
        }
        for bad in [
            "",
            "east",
            "us-east",
            "us-1",
            "-us-east-1",
            "us-east-1-",
            "us--east-1",
            "US-east-1",
            "us-East-1",
            "us-east-1a",
            "us-east-a1",
            "us-east2-1",
            "us_east_1",
            "us-east-*",
            "us-east- 1",
            "aws-global",
            "local",
            "-a-",
            "us-east-1 ",
        ] {
            assert_eq!(
                Region::parse(bad),
                Err(IdError::Region(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn partitions_follow_region_prefixes() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(Region::parse(region).unwrap().partition(), partition);
        }
    }

    #[test]
    fn serde_refuses_what_parse_refuses() {
        let a: AccountId = serde_json::from_str("\"123456789012\"").unwrap();
        assert_eq!(a, "123456789012");
        let err = serde_json::from_str::<AccountId>("\"12345\"").unwrap_err();
        assert!(
            err.to_string().contains("`12345` is not a 12-digit"),
            "{err}"
        );
        let r: Region = serde_json::from_str("\"us-west-2\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"us-west-2\"");
        assert!(serde_json::from_str::<Region>("\"US-WEST-2\"").is_err());
    }
}
