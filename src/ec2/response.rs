//! EC2's answers: the Query API's XML error body and the messages EC2 puts
//! in it (`UnauthorizedOperation` worded as AWS words it, `DryRunOperation`,
//! `InvalidAction`, malformed requests), with the HTTP status EC2 uses.
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are
//! not authorized to perform this operation. User: ... is not authorized to
//! perform: ec2:RunInstances on resource: ... because no identity-based
//! policy allows the ec2:RunInstances action. Encoded authorization failure
//! message: ...</Message></Error></Errors><RequestID>...</RequestID></Response>
//! ```

use crate::engine::decision::with_article;
use crate::engine::{AuthzAnswer, Outcome, Reason};
use crate::policy::PolicyKind;

/// The content type of EC2's XML answers.
pub const CONTENT_TYPE: &str = "text/xml;charset=UTF-8";

/// `UnauthorizedOperation`: the caller may not do this.
pub const UNAUTHORIZED: &str = "UnauthorizedOperation";
/// `DryRunOperation`: the call would have succeeded.
pub const DRY_RUN: &str = "DryRunOperation";
/// The message of a `DryRunOperation`.
pub const DRY_RUN_MESSAGE: &str = "Request would have succeeded, but DryRun flag is set.";
/// `InvalidAction`: the action is not an EC2 action.
pub const INVALID_ACTION: &str = "InvalidAction";

/// One EC2 error answer: HTTP status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Ec2Error {
    /// An error with any code.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// HTTP 403 `UnauthorizedOperation` with `message`
    /// (see [`unauthorized_message`]).
    pub fn unauthorized(message: String) -> Self {
        Self::new(403, UNAUTHORIZED, message)
    }

    /// HTTP 412 `DryRunOperation`.
    pub fn dry_run() -> Self {
        Self::new(412, DRY_RUN, DRY_RUN_MESSAGE)
    }

    /// HTTP 400 `InvalidAction` for an action EC2 does not have.
    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            400,
            INVALID_ACTION,
            format!("The action {action} is not valid for this web service."),
        )
    }

    /// HTTP 400 with a client-error code (`MalformedQueryString`,
    /// `InvalidParameterValue`, `MissingParameter`, ...).
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The XML body, with `request_id` as the `RequestID`.
    pub fn body(&self, request_id: &str) -> String {
        error_xml(&self.code, &self.message, request_id)
    }
}

/// EC2's XML error document.
pub fn error_xml(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The clause that says why, as AWS words it: `because no identity-based
/// policy allows the ec2:X action`, `with an explicit deny in a service
/// control policy`, ... Built from the answer's decision, typed reason and
/// deciding statements.
pub fn because(answer: &AuthzAnswer, action: &str) -> String {
    let reason = answer.reason.engine();
    match answer.decision {
        Outcome::ExplicitDeny => {
            if let Some(r @ Reason::ExplicitDeny(_)) = reason {
                return r.describe().into_owned();
            }
            let kind = answer
                .matched
                .first()
                .map(|m| m.policy_type)
                .filter(|k| *k != PolicyKind::Trust)
                .unwrap_or(PolicyKind::Identity);
            format!("with an explicit deny in {}", with_article(kind))
        }
        Outcome::ImplicitDeny | Outcome::Allowed => {
            let kind = reason
                .and_then(|r| r.not_allowed_by())
                .unwrap_or(PolicyKind::Identity);
            format!("because no {} allows the {action} action", kind.as_str())
        }
    }
}

/// The `UnauthorizedOperation` message: `You are not authorized to perform
/// this operation. User: P is not authorized to perform: A on resource: R
/// <because>. Encoded authorization failure message: M`. A `*` resource is
/// left out, as AWS does for actions without resource types.
pub fn unauthorized_message(
    principal: &str,
    action: &str,
    resource: &str,
    because: &str,
    encoded: &str,
) -> String {
    let on = if resource == "*" || resource.is_empty() {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    format!(
        "You are not authorized to perform this operation. User: {principal} is not authorized to perform: {action}{on} {because}. Encoded authorization failure message: {encoded}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AnswerReason, MatchedInfo};

    fn answer(decision: Outcome, reason: Reason, matched: &[PolicyKind]) -> AuthzAnswer {
        AuthzAnswer {
            decision,
            reason: reason.into(),
            matched: matched
                .iter()
                .map(|t| MatchedInfo {
                    policy: "p".into(),
                    policy_type: *t,
                    statement: 0,
                    sid: None,
                })
                .collect(),
            missing_context_keys: Vec::new(),
            revision: "r".into(),
        }
    }

    #[test]
    fn reasons_are_worded_as_aws_words_them() {
        let a = "ec2:RunInstances";
        let cases = [
            (
                answer(Outcome::ImplicitDeny, Reason::NoIdentityAllow, &[]),
                "because no identity-based policy allows the ec2:RunInstances action",
            ),
            (
                answer(Outcome::ImplicitDeny, Reason::NoBoundaryAllow, &[]),
                "because no permissions boundary allows the ec2:RunInstances action",
            ),
            (
                answer(Outcome::ImplicitDeny, Reason::NoSessionAllow, &[]),
                "because no session policy allows the ec2:RunInstances action",
            ),
            (
                answer(Outcome::ImplicitDeny, Reason::NoScpAllow { level: 1 }, &[]),
                "because no service control policy allows the ec2:RunInstances action",
            ),
            (
                answer(Outcome::ImplicitDeny, Reason::NoRcpAllow { level: 0 }, &[]),
                "because no resource control policy allows the ec2:RunInstances action",
            ),
            (
                answer(Outcome::ImplicitDeny, Reason::NoResourceAllow, &[]),
                "because no resource-based policy allows the ec2:RunInstances action",
            ),
            (
                answer(
                    Outcome::ExplicitDeny,
                    Reason::ExplicitDeny(PolicyKind::Scp),
                    &[PolicyKind::Scp],
                ),
                "with an explicit deny in a service control policy",
            ),
            (
                answer(
                    Outcome::ExplicitDeny,
                    Reason::ExplicitDeny(PolicyKind::Identity),
                    &[PolicyKind::Identity],
                ),
                "with an explicit deny in an identity-based policy",
            ),
            (
                answer(
                    Outcome::ExplicitDeny,
                    Reason::ExplicitDeny(PolicyKind::Boundary),
                    &[PolicyKind::Boundary],
                ),
                "with an explicit deny in a permissions boundary",
            ),
            (
                answer(
                    Outcome::ExplicitDeny,
                    Reason::ExplicitDeny(PolicyKind::Session),
                    &[PolicyKind::Session],
                ),
                "with an explicit deny in a session policy",
            ),
        ];
        for (ans, want) in cases {
            assert_eq!(because(&ans, a), want, "{}", ans.reason);
        }
        // Anything else (an unknown principal) reads as no identity allow.
        let mut odd = answer(Outcome::ImplicitDeny, Reason::NoIdentityAllow, &[]);
        odd.reason = AnswerReason::UnknownPrincipal("x".into());
        assert_eq!(
            because(&odd, a),
            "because no identity-based policy allows the ec2:RunInstances action"
        );
        odd.decision = Outcome::ExplicitDeny;
        assert_eq!(
            because(&odd, a),
            "with an explicit deny in an identity-based policy"
        );
    }

    #[test]
    fn messages_and_xml() {
        let m = unauthorized_message(
            "arn:aws:iam::1:user/bob",
            "ec2:TerminateInstances",
            "arn:aws:ec2:us-east-1:1:instance/i-1",
            "because no identity-based policy allows the ec2:TerminateInstances action",
            "ENC",
        );
        assert_eq!(
            m,
            "You are not authorized to perform this operation. User: arn:aws:iam::1:user/bob is not authorized to perform: ec2:TerminateInstances on resource: arn:aws:ec2:us-east-1:1:instance/i-1 because no identity-based policy allows the ec2:TerminateInstances action. Encoded authorization failure message: ENC"
        );
        let m = unauthorized_message("u", "ec2:DescribeInstances", "*", "because x", "E");
        assert!(
            m.contains("perform: ec2:DescribeInstances because x."),
            "{m}"
        );
        let body = Ec2Error::unauthorized("a <b> & 'c'".into()).body("req-1");
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>a &lt;b&gt; &amp; &apos;c&apos;</Message></Error></Errors><RequestID>req-1</RequestID></Response>"
        );
        let d = Ec2Error::dry_run();
        assert_eq!((d.status, d.code.as_str()), (412, "DryRunOperation"));
        assert_eq!(
            Ec2Error::invalid_action("Launch").message,
            "The action Launch is not valid for this web service."
        );
    }
}
