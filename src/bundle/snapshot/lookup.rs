//! Principal lookup in a compiled snapshot: roles, users, instance
//! profiles and organization memberships by ARN or name (IAM's case rules).

use std::sync::Arc;

use super::*;

impl Snapshot {
    /// The role with this ARN (role names compared case-insensitively, as
    /// IAM does; the path must match).
    pub fn role(&self, arn: &str) -> Option<RoleInfo> {
        let e = self.role_entity(arn)?;
        Some(RoleInfo {
            arn: e.arn.clone(),
            role_id: e.role_id.clone(),
            max_session_duration: self
                .max_session_durations
                .get(&e.arn)
                .copied()
                .unwrap_or(DEFAULT_MAX_SESSION_DURATION),
        })
    }

    pub(super) fn role_entity(&self, arn: &str) -> Option<&Arc<Entity>> {
        let parsed = crate::policy::arn::Arn::parse(arn)?;
        let name = parsed.resource.strip_prefix("role/")?.rsplit('/').next()?;
        let e = self
            .by_name
            .get(parsed.account)?
            .roles
            .get(&*ascii_lowercase(name))?;
        (e.arn == arn).then_some(e)
    }

    /// Whether the trust policy of role `role_arn` lets the service
    /// principal `service` (`ec2.amazonaws.com`) perform `action`
    /// (`sts:AssumeRole`) on the role: a statement of the trust policy
    /// allows it and none denies it. A service has no identity policies,
    /// so the trust policy alone decides (IAM User Guide, "Policy
    /// evaluation logic": role trust policies must allow explicitly).
    pub fn trust_allows_service(
        &self,
        role_arn: &str,
        service: &str,
        action: &str,
        context: &Context,
    ) -> bool {
        let Some(trust) = self.role_entity(role_arn).and_then(|e| e.trust.as_ref()) else {
            return false;
        };
        let principal = Principal::service(service);
        let req = Request::new(&principal, action, role_arn, context);
        let mut allowed = false;
        for policy in trust.policies() {
            for st in policy.statements() {
                let mut missing = crate::policy::variables::MissingKeys::default();
                if st.applies(&req, false, false, &mut missing).is_some() {
                    if st.effect() == crate::policy::Effect::Deny {
                        return false;
                    }
                    allowed = true;
                }
            }
        }
        allowed
    }

    /// Whether the bundle has the managed policy `arn`.
    pub fn has_managed_policy(&self, arn: &str) -> bool {
        self.managed.contains_key(arn)
    }

    /// The users named `name` in every account: `(account, ARN)`.
    pub fn users_named<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = (&'s str, &'s str)> + use<'s, 'n> {
        self.by_name.iter().filter_map(move |(account, n)| {
            Some((account.as_str(), n.users.get(name)?.arn.as_str()))
        })
    }

    /// The user with this exact ARN: its unique id (`UserId`), if the
    /// bundle gave one (`Some(None)` for a user without it).
    pub fn user(&self, arn: &str) -> Option<Option<&str>> {
        self.users.get(arn).map(|e| e.user_id.as_deref())
    }

    /// The organization and OU ARNs of `account`, for EC2 launch and
    /// create-volume permissions. `None` when the account is not in the
    /// bundle's organization, or the organization's `Id` or
    /// `ManagementAccountId` is unknown.
    pub fn org_membership(&self, account: &str) -> Option<&OrgMembership> {
        self.memberships.get(account)
    }

    /// The instance profile `name` of `account` (names compared
    /// case-insensitively, as IAM does).
    pub fn instance_profile(&self, account: &str, name: &str) -> Option<&InstanceProfile> {
        self.by_name
            .get(account)?
            .profiles
            .get(&*ascii_lowercase(name))
    }
}
