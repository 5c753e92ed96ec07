//! Suggestions: elements a statement does not need. An action or resource
//! listed twice, or one already covered by another pattern of the same
//! element (`ec2:RunInstances` next to `ec2:*`). Actions compare
//! case-insensitively, resources as written.
//!
//! Codes: `DUPLICATE_ACTION`, `REDUNDANT_ACTION`, `DUPLICATE_RESOURCE`,
//! `REDUNDANT_RESOURCE`.

use crate::validate::located::{Item, Stmt};
use crate::validate::patterns::covers;
use crate::validate::{Finding, Severity};

/// Runs the suggestions on one statement.
pub(crate) fn check(s: &Stmt<'_>, out: &mut Vec<Finding>) {
    let actions: Vec<String> = s
        .actions
        .iter()
        .map(|a| a.text.to_ascii_lowercase())
        .collect();
    redundant(
        &s.actions,
        &actions,
        ("DUPLICATE_ACTION", "REDUNDANT_ACTION"),
        out,
    );
    let resources: Vec<String> = s.resources.iter().map(|r| r.text.clone()).collect();
    redundant(
        &s.resources,
        &resources,
        ("DUPLICATE_RESOURCE", "REDUNDANT_RESOURCE"),
        out,
    );
}

/// Reports each item that repeats an earlier one (`codes.0`) or that another
/// item covers (`codes.1`); of two patterns that cover each other, the later.
/// `keys` are the items' texts as compared.
fn redundant(
    items: &[Item],
    keys: &[String],
    codes: (&'static str, &'static str),
    out: &mut Vec<Finding>,
) {
    for (j, (item, b)) in items.iter().zip(keys).enumerate() {
        if let Some(first) = keys.iter().take(j).position(|a| a == b) {
            let earlier = items.get(first).map_or("", |i| i.path.as_str());
            out.push(Finding::new(
                Severity::Suggestion,
                codes.0,
                item.path.clone(),
                format!(
                    "`{}` is listed again (first at `{earlier}`); remove the duplicate",
                    item.text
                ),
            ));
            continue;
        }
        let cover =
            items.iter().zip(keys).enumerate().find(|(i, (_, a))| {
                *i != j && *a != b && covers(a, b) && (!covers(b, a) || *i < j)
            });
        if let Some((_, (by, _))) = cover {
            out.push(Finding::new(
                Severity::Suggestion,
                codes.1,
                item.path.clone(),
                format!(
                    "`{}` is already covered by `{}` in the same statement; remove it",
                    item.text, by.text
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyKind, parse_document};
    use crate::validate::located::statements;
    use serde_json::{Value, json};

    fn findings(statement: Value) -> Vec<Finding> {
        let doc = json!({"Version": "2012-10-17", "Statement": statement});
        let mut out = Vec::new();
        let parsed = parse_document(&doc, PolicyKind::Identity).expect("test documents parse");
        for s in statements(&doc, &parsed) {
            check(&s, &mut out);
        }
        out
    }

    #[test]
    fn duplicates_and_covered_patterns() {
        let f = findings(json!({"Effect": "Allow",
            "Action": ["ec2:RunInstances", "ec2:*", "EC2:runinstances", "ec2:Describe*",
                       "ec2:DescribeImages", "s3:GetObject"],
            "Resource": ["arn:aws:ec2:*:*:instance/*", "*", "arn:aws:ec2:*:*:instance/*"]}));
        let got: Vec<_> = f.iter().map(|f| (f.code, f.path.as_str())).collect();
        assert_eq!(
            got,
            [
                ("REDUNDANT_ACTION", "$.Statement.Action[0]"),
                ("DUPLICATE_ACTION", "$.Statement.Action[2]"),
                ("REDUNDANT_ACTION", "$.Statement.Action[3]"),
                ("REDUNDANT_ACTION", "$.Statement.Action[4]"),
                ("REDUNDANT_RESOURCE", "$.Statement.Resource[0]"),
                ("DUPLICATE_RESOURCE", "$.Statement.Resource[2]"),
            ]
        );
        assert!(f.iter().all(|f| f.severity == Severity::Suggestion));
        assert_eq!(
            f[0].message,
            "`ec2:RunInstances` is already covered by `ec2:*` in the same statement; remove it"
        );
        assert_eq!(
            f[1].message,
            "`EC2:runinstances` is listed again (first at `$.Statement.Action[0]`); remove the duplicate"
        );
    }

    #[test]
    fn mutual_coverage_reports_the_later_only() {
        let f = findings(json!([{"Effect": "Allow", "Action": ["ec2:**", "ec2:*"],
            "Resource": "*"}]));
        let got: Vec<_> = f.iter().map(|f| (f.code, f.path.as_str())).collect();
        assert_eq!(got, [("REDUNDANT_ACTION", "$.Statement[0].Action[1]")]);
        // Resources compare case-sensitively.
        let f = findings(json!([{"Effect": "Allow", "Action": "ec2:*",
            "Resource": ["arn:aws:ec2:*:*:instance/A", "arn:aws:ec2:*:*:instance/a"]}]));
        assert_eq!(f, []);
    }
}
