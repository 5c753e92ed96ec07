//! `s3://bucket/key` bundles: a GET over the S3 REST API, signed with
//! SigV4 (the AWS SDK's signer, `aws-sigv4`), conditional on the last
//! ETag like any HTTP source. Credentials are read at every fetch (so
//! rotated session credentials are picked up) from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else from the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`; profile `AWS_PROFILE`, else `default`).

use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::bundle::source::http::{FetchError, Fetched, HttpClient};

/// S3's object key encoding: everything but unreserved characters and `/`.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Where an S3 bundle lives and how to address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    pub region: String,
    /// `--bundle-s3-endpoint` (e.g. `http://127.0.0.1:9000`); `None`:
    /// `https://s3.REGION.amazonaws.com`.
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
}

impl S3Location {
    /// Parses `s3://bucket/key`.
    pub fn parse(
        url: &str,
        region: String,
        endpoint: Option<String>,
        path_style: bool,
    ) -> Result<Self, FetchError> {
        let bad = || FetchError::Url(url.to_owned());
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
        let bucket_ok = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok || key.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            region,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            path_style,
        })
    }

    /// The HTTP(S) URL of the object.
    pub fn http_url(&self) -> Result<String, FetchError> {
        let key = utf8_percent_encode(&self.key, KEY).to_string();
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region));
        if self.path_style {
            return Ok(format!("{endpoint}/{}/{key}", self.bucket));
        }
        let (scheme, host) = endpoint
            .split_once("://")
            .ok_or_else(|| FetchError::Url(endpoint.clone()))?;
        Ok(format!("{scheme}://{}.{host}/{key}", self.bucket))
    }

    /// A conditional, signed GET of the object.
    pub async fn get(
        &self,
        client: &HttpClient,
        etag: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        let url = self.http_url()?;
        let creds = credentials()?;
        let headers = sign_get(&url, &self.region, &creds, SystemTime::now())?;
        client.get(&url, &headers, etag).await
    }
}

/// AWS credentials for signing.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Credentials from the environment, else the shared credentials file.
pub fn credentials() -> Result<Credentials, FetchError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
        });
    }
    let path = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")))
        .ok_or_else(|| FetchError::Credentials("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a shared credentials file".to_owned()))?;
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        FetchError::Credentials(format!(
            "no AWS credentials in the environment, and `{}`: {e}",
            path.display()
        ))
    })?;
    from_shared_file(&text, &profile).ok_or_else(|| {
        FetchError::Credentials(format!(
            "`{}`: profile `{profile}` has no aws_access_key_id / aws_secret_access_key",
            path.display()
        ))
    })
}

/// A profile of an AWS shared credentials file (INI).
pub fn from_shared_file(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// The headers that sign a GET of `url` (S3: single URI encoding, no path
/// normalisation, `x-amz-content-sha256`).
pub fn sign_get(
    url: &str,
    region: &str,
    creds: &Credentials,
    at: SystemTime,
) -> Result<Vec<(String, String)>, FetchError> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    let signing = |e: &dyn std::fmt::Display| FetchError::Signing(e.to_string());
    let uri: http::Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
    let host = uri
        .authority()
        .ok_or_else(|| FetchError::Url(url.to_owned()))?
        .as_str()
        .to_owned();
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "iamgate",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| signing(&e))?
        .into();
    let request_headers = [("host", host.as_str())];
    let signable = SignableRequest::new(
        "GET",
        url,
        request_headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| signing(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| signing(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_s3_urls_and_shared_credentials() {
        let loc = S3Location::parse(
            "s3://my-bucket/bundles/prod bundle.tar.gz",
            "eu-west-1".into(),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            loc.http_url().unwrap(),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/bundles/prod%20bundle.tar.gz"
        );
        let loc = S3Location::parse(
            "s3://b/k.tgz",
            "us-east-1".into(),
            Some("http://127.0.0.1:9000/".into()),
            true,
        )
        .unwrap();
        assert_eq!(loc.http_url().unwrap(), "http://127.0.0.1:9000/b/k.tgz");
        for bad in ["s3://", "s3://b", "s3://b/", "s3://B/k", "http://b/k"] {
            assert!(
                S3Location::parse(bad, "r".into(), None, false).is_err(),
                "{bad}"
            );
        }
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=S\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let ci = from_shared_file(text, "ci").unwrap();
        assert_eq!(
            (ci.access_key_id.as_str(), ci.session_token.as_deref()),
            ("C", Some("T"))
        );
        assert_eq!(
            from_shared_file(text, "default").unwrap().access_key_id,
            "A"
        );
        assert!(from_shared_file(text, "missing").is_none());
    }

    #[test]
    fn issue_15_s3_gets_carry_a_sigv4_authorization() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let headers = sign_get(
            "http://127.0.0.1:9000/b/k.tgz",
            "us-east-1",
            &creds,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let get = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let auth = get("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("x-amz-content-sha256"), "{auth}");
        assert_eq!(get("x-amz-security-token"), "tok");
        assert_eq!(get("x-amz-date"), "20231114T221320Z");
    }
}
