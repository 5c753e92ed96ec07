//! The Service Authorization Reference, as the services behind the seam
//! supply it (issue 12): the typed tables of one service's actions (access
//! levels, resource types with ARN templates, condition keys) and the
//! lookups over them. Each service generates its own tables
//! (`scripts/catalog/gen-catalog.mjs`) and hands a [`Catalog`] to the seam
//! ([`super::Service::catalog`]); the validator reads whichever catalogs
//! the registry holds. Read-only and pure: lookups and ARN template
//! matching only, case-insensitive where IAM is, never allocating.

use std::cmp::Ordering;
use std::fmt;

/// An action's access level, as classified by the Service Authorization Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessLevel {
    /// Lists resources (`Describe*` mostly).
    List,
    /// Reads resource contents or attributes.
    Read,
    /// Creates, changes or deletes resources.
    Write,
    /// Grants or changes permissions on resources.
    PermissionsManagement,
    /// Changes tags only.
    Tagging,
}

impl AccessLevel {
    /// The level as the Service Authorization Reference spells it
    /// (`"Permissions management"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::List => "List",
            Self::Read => "Read",
            Self::Write => "Write",
            Self::PermissionsManagement => "Permissions management",
            Self::Tagging => "Tagging",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value type of a condition key, as the Service Authorization Reference
/// declares it. `ArrayOf*` keys are multivalued (use `ForAnyValue:`/`ForAllValues:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionKeyType {
    /// `String`.
    String,
    /// `ArrayOfString`.
    ArrayOfString,
    /// `Numeric`.
    Numeric,
    /// `ArrayOfNumeric`.
    ArrayOfNumeric,
    /// `Date`.
    Date,
    /// `ArrayOfDate`.
    ArrayOfDate,
    /// `Bool`.
    Bool,
    /// `ArrayOfBool`.
    ArrayOfBool,
    /// `ARN`.
    Arn,
    /// `ArrayOfARN`.
    ArrayOfArn,
    /// `IPAddress`.
    IpAddress,
    /// `ArrayOfIPAddress`.
    ArrayOfIpAddress,
}

impl ConditionKeyType {
    /// The type as the Service Authorization Reference spells it (`"ArrayOfARN"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::ArrayOfString => "ArrayOfString",
            Self::Numeric => "Numeric",
            Self::ArrayOfNumeric => "ArrayOfNumeric",
            Self::Date => "Date",
            Self::ArrayOfDate => "ArrayOfDate",
            Self::Bool => "Bool",
            Self::ArrayOfBool => "ArrayOfBool",
            Self::Arn => "ARN",
            Self::ArrayOfArn => "ArrayOfARN",
            Self::IpAddress => "IPAddress",
            Self::ArrayOfIpAddress => "ArrayOfIPAddress",
        }
    }

    /// Whether the key is multivalued (an `ArrayOf*` type).
    pub const fn is_array(self) -> bool {
        matches!(
            self,
            Self::ArrayOfString
                | Self::ArrayOfNumeric
                | Self::ArrayOfDate
                | Self::ArrayOfBool
                | Self::ArrayOfArn
                | Self::ArrayOfIpAddress
        )
    }

    /// The type of one element: `ArrayOfString` → `String`; scalars map to themselves.
    pub const fn element_type(self) -> Self {
        match self {
            Self::ArrayOfString => Self::String,
            Self::ArrayOfNumeric => Self::Numeric,
            Self::ArrayOfDate => Self::Date,
            Self::ArrayOfBool => Self::Bool,
            Self::ArrayOfArn => Self::Arn,
            Self::ArrayOfIpAddress => Self::IpAddress,
            other => other,
        }
    }
}

impl fmt::Display for ConditionKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action of a service (`ec2:RunInstances`) as the Service
/// Authorization Reference describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionDef {
    /// The action name without the service prefix, in AWS's casing (`"RunInstances"`).
    pub name: &'static str,
    /// One-line description from the reference.
    pub description: &'static str,
    /// The primary access level: the first one the reference lists
    /// (`PermissionsManagement` for `CreateNetworkInterfacePermission`,
    /// `Tagging` for `CreateTags`).
    pub access_level: AccessLevel,
    /// Every access level the reference lists, primary first (a few actions
    /// are listed as e.g. "Permissions management, Write").
    pub access_levels: &'static [AccessLevel],
    /// The resource types the action can be authorized against, sorted by
    /// name. Empty means the action supports only `"Resource": "*"`.
    pub resource_types: &'static [ActionResource],
    /// Condition keys that apply to the action regardless of resource type.
    pub condition_keys: &'static [&'static str],
    /// Other actions the caller also needs permission for (the action-level
    /// and resource-level lists of the reference, merged and sorted, fully
    /// qualified like `"iam:PassRole"`).
    pub dependent_actions: &'static [&'static str],
}

/// A resource type as it appears in one action's row of the reference.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionResource {
    /// The resource type name (`"instance"`), a key of [`Catalog::resource_type`].
    pub resource_type: &'static str,
    /// Whether the reference marks it required (`instance*`): the action is
    /// always authorized against a resource of this type.
    pub required: bool,
    /// Condition keys supported when authorizing the action against this
    /// resource type.
    pub condition_keys: &'static [&'static str],
    /// The resource type's definition (same as `resource_type(self.resource_type)`).
    pub definition: &'static ResourceTypeDef,
}

/// One resource type of a service with its ARN template.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceTypeDef {
    /// The resource type name (`"instance"`, `"security-group"`).
    pub name: &'static str,
    /// The ARN template with `${...}` placeholders, e.g.
    /// `arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}`.
    /// The last placeholder is always the resource id.
    pub arn_template: &'static str,
    /// Condition keys the resource type itself supports.
    pub condition_keys: &'static [&'static str],
}

/// One condition key a service defines (`ec2:InstanceType`,
/// `aws:RequestTag/${TagKey}`).
#[derive(Debug, PartialEq, Eq)]
pub struct ConditionKeyDef {
    /// The key name in AWS's casing; may end in a placeholder such as `${TagKey}`.
    pub name: &'static str,
    /// The declared value type.
    pub value_type: ConditionKeyType,
    /// One-line description from the reference.
    pub description: &'static str,
}

/// One service's view of the Service Authorization Reference: its actions,
/// resource types and condition keys, each table sorted by ASCII-lowercased
/// name (the generated tables are; their tests check it).
#[derive(Debug)]
pub struct Catalog {
    /// The IAM prefix of the service's actions (`ec2`).
    pub prefix: &'static str,
    /// How findings name the service (`EC2`).
    pub name: &'static str,
    /// Version of the data the tables were generated from.
    pub source_version: &'static str,
    pub actions: &'static [ActionDef],
    pub resource_types: &'static [ResourceTypeDef],
    pub condition_keys: &'static [ConditionKeyDef],
    /// The keys of `condition_keys` whose name ends in a placeholder.
    pub condition_key_patterns: &'static [&'static ConditionKeyDef],
}

impl Catalog {
    /// Looks up an action by name without the prefix (`"RunInstances"`),
    /// case-insensitively.
    pub fn action(&self, name: &str) -> Option<&'static ActionDef> {
        let i = self
            .actions
            .binary_search_by(|a| cmp_ignore_ascii_case(a.name, name))
            .ok()?;
        self.actions.get(i)
    }

    /// Looks up a resource type by name (`"instance"`), case-insensitively.
    pub fn resource_type(&self, name: &str) -> Option<&'static ResourceTypeDef> {
        let i = self
            .resource_types
            .binary_search_by(|r| cmp_ignore_ascii_case(r.name, name))
            .ok()?;
        self.resource_types.get(i)
    }

    /// Looks up a condition key definition, case-insensitively. A concrete
    /// key such as `ec2:ResourceTag/team` finds the placeholder definition
    /// `ec2:ResourceTag/${TagKey}`; an exactly named key wins over a
    /// placeholder one. Only the keys the service defines are here: global
    /// keys such as `aws:SourceIp` are not (they are valid for every
    /// action), unless the service lists them (`aws:RequestTag/${TagKey}`).
    pub fn condition_key(&self, name: &str) -> Option<&'static ConditionKeyDef> {
        if let Ok(i) = self
            .condition_keys
            .binary_search_by(|k| cmp_ignore_ascii_case(k.name, name))
        {
            return self.condition_keys.get(i);
        }
        self.condition_key_patterns
            .iter()
            .copied()
            .find(|k| key_matches(k.name, name))
    }

    /// The resource type whose ARN template matches `arn`, if any.
    pub fn resource_type_for_arn(&self, arn: &str) -> Option<&'static ResourceTypeDef> {
        self.resource_types.iter().find(|r| r.matches_arn(arn))
    }

    /// Whether `namespace` (an ARN's service field) is the service's own or
    /// that of one of its resource types (EC2 acts on IAM roles and ACM
    /// certificates too).
    pub fn acts_on(&self, namespace: &str) -> bool {
        self.prefix == namespace || self.resource_types.iter().any(|t| t.service() == namespace)
    }

    /// Whether a condition key is in the service's namespace
    /// (`ec2:...`, case-insensitive).
    pub fn owns_key(&self, key: &str) -> bool {
        key.split_once(':')
            .is_some_and(|(p, _)| p.eq_ignore_ascii_case(self.prefix))
    }
}

impl ActionDef {
    /// This action's entry for resource type `name` (case-insensitive).
    pub fn resource(&self, name: &str) -> Option<&'static ActionResource> {
        self.resource_types
            .iter()
            .find(|r| r.resource_type.eq_ignore_ascii_case(name))
    }

    /// The resource types the reference marks required (`instance*`).
    pub fn required_resource_types(&self) -> impl Iterator<Item = &'static ActionResource> {
        self.resource_types.iter().filter(|r| r.required)
    }

    /// Whether the reference lists `level` for this action (primary or not).
    pub fn has_access_level(&self, level: AccessLevel) -> bool {
        self.access_levels.contains(&level)
    }

    /// Whether `key` is a condition key the reference lists for this
    /// action: an action-level key, a key of one of its resource types in
    /// the action's row, or one of those resource types' own keys.
    /// Placeholder keys match concrete ones (`ec2:ResourceTag/team`).
    /// Global `aws:` keys are not listed here.
    pub fn allows_condition_key(&self, key: &str) -> bool {
        let listed = |keys: &[&str]| keys.iter().any(|p| key_matches(p, key));
        listed(self.condition_keys)
            || self
                .resource_types
                .iter()
                .any(|r| listed(r.condition_keys) || listed(r.definition.condition_keys))
    }
}

impl ResourceTypeDef {
    /// Whether `arn` is an ARN of this resource type. Literal parts of the
    /// template match exactly (case-sensitive, as ARNs are); each placeholder
    /// matches a non-empty run without `:`, except the last one (the resource
    /// id), which matches any non-empty rest, `/` and `:` included.
    pub fn matches_arn(&self, arn: &str) -> bool {
        match_template(self.arn_template, arn).is_some()
    }

    /// The resource id part (what the last placeholder matched) of `arn`, if
    /// `arn` is an ARN of this resource type.
    pub fn resource_id<'a>(&self, arn: &'a str) -> Option<&'a str> {
        match_template(self.arn_template, arn)
    }

    /// Builds an ARN of this type: `${Partition}`, `${Region}` and
    /// `${Account}` are filled from the arguments (those the template lacks,
    /// e.g. the account of an `image`, are ignored); every other placeholder
    /// (the resource id) gets `id`.
    pub fn arn(&self, partition: &str, region: &str, account: &str, id: &str) -> String {
        let mut out = String::with_capacity(
            self.arn_template.len() + partition.len() + region.len() + account.len() + id.len(),
        );
        for piece in Pieces(self.arn_template) {
            out.push_str(match piece {
                Piece::Literal(s) => s,
                Piece::Placeholder("Partition") => partition,
                Piece::Placeholder("Region") => region,
                Piece::Placeholder("Account") => account,
                Piece::Placeholder(_) => id,
            });
        }
        out
    }

    /// The name of the resource id placeholder (`"InstanceId"`).
    pub fn id_placeholder(&self) -> &'static str {
        Pieces(self.arn_template)
            .filter_map(|p| match p {
                Piece::Placeholder(name) => Some(name),
                Piece::Literal(_) => None,
            })
            .last()
            .unwrap_or("")
    }

    /// The service of the ARN (`"ec2"`; `"iam"` for `role`, `"acm"` for `certificate`).
    pub fn service(&self) -> &'static str {
        self.arn_template.split(':').nth(2).unwrap_or("")
    }
}

impl ConditionKeyDef {
    /// Whether the name ends in a placeholder (`aws:RequestTag/${TagKey}`).
    pub fn is_pattern(&self) -> bool {
        self.name.contains("${")
    }

    /// Whether a concrete key (`ec2:ResourceTag/team`) is an instance of this
    /// definition, case-insensitively.
    pub fn matches(&self, key: &str) -> bool {
        key_matches(self.name, key)
    }
}

/// Compares `a` and `b` as if both were ASCII-lowercased, without allocating.
pub(crate) fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Whether condition key `key` is `pattern` (case-insensitive), or an
/// instance of it when `pattern` has a `${...}` placeholder, which stands
/// for any non-empty text.
pub(crate) fn key_matches(pattern: &str, key: &str) -> bool {
    if pattern.eq_ignore_ascii_case(key) {
        return true;
    }
    let Some(open) = pattern.find("${") else {
        return false;
    };
    let (prefix, placeholder) = pattern.split_at(open);
    let suffix = placeholder
        .find('}')
        .map_or("", |close| placeholder.get(close + 1..).unwrap_or(""));
    key.len() > prefix.len() + suffix.len()
        && key
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        && key
            .get(key.len() - suffix.len()..)
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
}

/// Matches `s` against an ARN template; on success returns what the last
/// placeholder matched (empty if the template has none).
pub(crate) fn match_template<'a>(template: &str, s: &'a str) -> Option<&'a str> {
    let Some(open) = template.find("${") else {
        return (template == s).then_some("");
    };
    let (literal, placeholder) = template.split_at(open);
    let rest = s.strip_prefix(literal)?;
    let Some(close) = placeholder.find('}') else {
        // Malformed placeholder: treat the remainder as literal text.
        return (placeholder == rest).then_some("");
    };
    let tail = placeholder.get(close + 1..)?;
    if !tail.contains("${") {
        // The last placeholder: any non-empty text, then the literal tail.
        let end = rest.len().checked_sub(tail.len())?;
        let id = rest.get(..end)?;
        return (!id.is_empty() && rest.get(end..)? == tail).then_some(id);
    }
    // Any other placeholder: a non-empty run without ':'.
    let run = rest.find(':').unwrap_or(rest.len());
    (1..=run)
        .filter(|&n| rest.is_char_boundary(n))
        .find_map(|n| match_template(tail, rest.get(n..)?))
}

/// A piece of an ARN template.
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

/// Splits an ARN template into literal text and `${Name}` placeholders.
struct Pieces<'a>(&'a str);

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if self.0.is_empty() {
            return None;
        }
        if let Some(after) = self.0.strip_prefix("${")
            && let Some(close) = after.find('}')
        {
            let (name, rest) = after.split_at(close);
            self.0 = rest.get(1..).unwrap_or("");
            return Some(Piece::Placeholder(name));
        }
        // Literal text up to the next placeholder (a lone unclosed "${" stays literal).
        let end = self
            .0
            .get(1..)
            .and_then(|s| s.find("${"))
            .map_or(self.0.len(), |i| i + 1);
        let (literal, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(Piece::Literal(literal))
    }
}
