//! STS's XML answers, in the shapes botocore parses: `<{Action}Response>`
//! with `<{Action}Result>` and `<ResponseMetadata><RequestId>`, and
//! `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`.

use std::fmt::Write as _;

use super::NAMESPACE;

/// An STS error: HTTP status, `Type`, `Code` and `Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl StsError {
    /// A `Sender` error with status `status`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationError", message)
    }

    /// `403 AccessDenied` in STS's words.
    pub fn access_denied(principal: &str, action: &str, resource: &str) -> Self {
        let on = if resource == "*" {
            String::new()
        } else {
            format!(" on resource: {resource}")
        };
        Self::new(
            403,
            "AccessDenied",
            format!("User: {principal} is not authorized to perform: {action}{on}"),
        )
    }

    /// `Sender` for client errors, `Receiver` for ours.
    fn kind(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The `<ErrorResponse>` document.
    pub fn to_xml(&self, request_id: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            self.kind(),
            self.code,
            escape(&self.message),
            escape(request_id)
        )
    }
}

/// An element of a result: a leaf, or a group of elements.
#[derive(Debug, Clone)]
pub enum Node {
    Leaf(&'static str, String),
    Group(&'static str, Vec<Node>),
}

/// `<{action}Response><{action}Result>…</{action}Result><ResponseMetadata>…`.
pub fn result_xml(action: &str, result: &[Node], request_id: &str) -> String {
    let mut out = String::with_capacity(1024);
    let _ = writeln!(out, "<{action}Response xmlns=\"{NAMESPACE}\">");
    let _ = writeln!(out, "  <{action}Result>");
    for n in result {
        node(n, 2, &mut out);
    }
    let _ = writeln!(out, "  </{action}Result>");
    let _ = writeln!(
        out,
        "  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>",
        escape(request_id)
    );
    let _ = writeln!(out, "</{action}Response>");
    out
}

fn node(n: &Node, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match n {
        Node::Leaf(name, value) => {
            let _ = writeln!(out, "{pad}<{name}>{}</{name}>", escape(value));
        }
        Node::Group(name, children) => {
            let _ = writeln!(out, "{pad}<{name}>");
            for c in children {
                node(c, depth + 1, out);
            }
            let _ = writeln!(out, "{pad}</{name}>");
        }
    }
}

/// XML text escaping (element content).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_results_have_sts_shapes() {
        let e = StsError::access_denied(
            "arn:aws:iam::111122223333:user/a<b",
            "sts:AssumeRole",
            "arn:aws:iam::111122223333:role/R",
        );
        let x = e.to_xml("r-1");
        assert!(x.contains("<Type>Sender</Type>"));
        assert!(x.contains("<Code>AccessDenied</Code>"));
        assert!(x.contains("user/a&lt;b is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/R"));
        assert!(x.contains("<RequestId>r-1</RequestId>"));
        let r = result_xml(
            "GetCallerIdentity",
            &[
                Node::Leaf("Arn", "arn".into()),
                Node::Group("Credentials", vec![Node::Leaf("AccessKeyId", "A".into())]),
            ],
            "r-2",
        );
        assert!(r.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        assert!(r.contains("<GetCallerIdentityResult>\n    <Arn>arn</Arn>\n    <Credentials>\n      <AccessKeyId>A</AccessKeyId>"));
    }
}
