//! `AssumeRoleWithWebIdentity`: its parameters (STS API Reference; the
//! limits shared with `AssumeRole` come from [`super::params`]) and what a
//! verified web identity token contributes to the trust-policy decision
//! (IAM User Guide, "Available keys for OIDC federation" and
//! `aws:FederatedProvider`): `ISSUER:sub`, `ISSUER:aud` (`azp` when the
//! token has it, else `aud`), `ISSUER:oaud` (the `aud` of a token with
//! `azp`), `ISSUER:amr`, and the provider ARN as `aws:FederatedProvider`,
//! where ISSUER is the issuer URL without `https://`.
//!
//! Pure: the token is verified by [`crate::identity::oidc`], the decision
//! and the credentials are made by `server::sts_web_identity`.

use crate::engine::{Context, ContextValue};
use crate::identity::oidc::VerifiedToken;

use super::params::{self, AssumeRoleInput, Params};
use super::response::StsError;

/// The STS action name.
pub const ACTION: &str = "AssumeRoleWithWebIdentity";
/// The IAM action the role's trust policy must allow.
pub const IAM_ACTION: &str = "sts:AssumeRoleWithWebIdentity";
/// `WebIdentityToken`: 4 to 20,000 characters.
const TOKEN_LEN: std::ops::RangeInclusive<usize> = 4..=20_000;

/// What `AssumeRoleWithWebIdentity` was asked for, checked.
#[derive(Debug, Clone)]
pub struct WebIdentityInput {
    /// Role, session name, duration and session policies, read with
    /// `AssumeRole`'s limits.
    pub role: AssumeRoleInput,
    /// The token (never logged).
    pub token: String,
}

/// Whether a request's `Action` is `AssumeRoleWithWebIdentity` (read
/// before any signature check: this action is unsigned).
pub fn is_web_identity(params: &Params) -> bool {
    params.get("Action") == Some(ACTION)
}

/// Reads the action's parameters from the request's query string and body
/// (`params` is both, parsed).
pub fn parse(params: &Params, query: &str, body: &str) -> Result<WebIdentityInput, StsError> {
    if let Some(k) = params.unknown(&[
        "RoleArn",
        "RoleSessionName",
        "WebIdentityToken",
        "DurationSeconds",
        "Policy",
        "PolicyArns.member",
        "ProviderId",
    ]) {
        return Err(StsError::new(
            400,
            "InvalidParameterValue",
            format!("unknown parameter `{}`", params::printable(k)),
        ));
    }
    if params.get("ProviderId").is_some() {
        // ProviderId is for OAuth 2.0 access tokens; OIDC ID tokens (and
        // service-account tokens) name their issuer themselves.
        return Err(StsError::new(
            400,
            "InvalidParameterValue",
            "ProviderId is only for OAuth 2.0 access tokens, which this endpoint does not accept; omit it for OpenID Connect tokens",
        ));
    }
    let token = params.get("WebIdentityToken").ok_or_else(|| {
        StsError::validation(
            "1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null",
        )
    })?;
    if !TOKEN_LEN.contains(&token.len()) {
        return Err(StsError::validation(
            "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between 4 and 20000",
        ));
    }
    // The remaining parameters are AssumeRole's, with its limits.
    let (q, b) = (without_token(query), without_token(body));
    let role = AssumeRoleInput::parse(&Params::parse(&q, &b)?)?;
    Ok(WebIdentityInput {
        role,
        token: token.to_owned(),
    })
}

/// `form` without its `WebIdentityToken` pair.
fn without_token(form: &str) -> String {
    form.split('&')
        .filter(|part| {
            let key = part.split_once('=').map_or(*part, |(k, _)| k);
            let key = key.replace('+', " ");
            percent_encoding::percent_decode_str(&key).decode_utf8_lossy() != "WebIdentityToken"
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The context keys a verified token sets for the trust policy.
pub fn apply_token(token: &VerifiedToken, provider_arn: &str, ctx: &mut Context) {
    let hp = &token.issuer_host_path;
    ctx.insert(&format!("{hp}:sub"), ContextValue::One(token.sub.clone()));
    let aud = match (&token.azp, token.aud.as_slice()) {
        (Some(azp), _) => Some(ContextValue::One(azp.clone())),
        (None, [one]) => Some(ContextValue::One(one.clone())),
        (None, []) => None,
        (None, many) => Some(ContextValue::Many(many.to_vec())),
    };
    if let Some(aud) = aud {
        ctx.insert(&format!("{hp}:aud"), aud);
    }
    if token.azp.is_some() && !token.aud.is_empty() {
        ctx.insert(&format!("{hp}:oaud"), ContextValue::Many(token.aud.clone()));
    }
    if let Some(amr) = &token.amr {
        ctx.insert(&format!("{hp}:amr"), ContextValue::Many(amr.clone()));
    }
    ctx.insert_static(
        "aws:FederatedProvider",
        ContextValue::One(provider_arn.to_owned()),
    );
}

#[cfg(test)]
#[path = "web_identity_tests.rs"]
mod tests;
