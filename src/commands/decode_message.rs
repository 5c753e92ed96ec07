//! `iamgate decode-message`: what `sts:DecodeAuthorizationMessage` does for
//! the encoded authorization failure messages in iamgate's EC2
//! `UnauthorizedOperation` errors. Prints the decoded JSON document; exit 1
//! when the message does not decode or authenticate under the key, 2 when
//! the key cannot be read.

use std::io::Write;
use std::path::Path;

use crate::sts::message::MessageKey;

/// Decodes `message` with the key in `key_file` and prints the document.
pub fn run(
    key_file: &Path,
    message: &str,
    err: &mut dyn Write,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let key = match MessageKey::from_file(key_file) {
        Ok(k) => k,
        Err(e) => {
            writeln!(err, "iamgate: {e}")?;
            return Ok(2);
        }
    };
    match key.decode(message) {
        Ok(doc) => {
            let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
            writeln!(out, "{text}")?;
            Ok(0)
        }
        Err(e) => {
            writeln!(err, "iamgate: cannot decode the message: {e}")?;
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{AuthzAnswer, AuthzRequest};
    use crate::engine::Outcome;
    use crate::sts::message::AuthorizationMessage;

    #[test]
    fn decodes_with_the_key_and_refuses_others() {
        let dir = std::env::temp_dir().join(format!("iamgate-decode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key");
        std::fs::write(&key_file, "11".repeat(32)).unwrap();
        let other_file = dir.join("other");
        std::fs::write(&other_file, "22".repeat(32)).unwrap();
        let req = AuthzRequest {
            principal_arn: "arn:aws:iam::1:user/bob".into(),
            action: "ec2:RunInstances".into(),
            resource: "*".into(),
            ..Default::default()
        };
        let answer = AuthzAnswer {
            decision: Outcome::ImplicitDeny,
            reason: crate::engine::Reason::NoIdentityAllow.into(),
            matched: Vec::new(),
            missing_context_keys: Vec::new(),
            revision: "r".into(),
        };
        let msg = MessageKey::from_bytes(&[0x11; 32])
            .encode(&AuthorizationMessage::new(&req, &answer, "d", &[]))
            .unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(&key_file, &msg, &mut err, &mut out).unwrap(), 0);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["context"]["action"], "ec2:RunInstances");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(&other_file, &msg, &mut err, &mut out).unwrap(), 1);
        assert!(out.is_empty());
        assert!(String::from_utf8_lossy(&err).contains("does not authenticate"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            run(&dir.join("missing"), &msg, &mut err, &mut out).unwrap(),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
