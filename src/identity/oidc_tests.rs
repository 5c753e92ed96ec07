//! Unit tests of JWT verification (issue 16): RS256 and ES256 tokens
//! signed here with ring, and the attacks a verifier must refuse (alg
//! `none`, HMAC with the public key, algorithm swaps, unknown kid,
//! tampering, wrong issuer or audience, expiry).

use std::time::{Duration, UNIX_EPOCH};

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::json;

use super::*;

/// A 2048-bit RSA key (RSAPrivateKey DER, generated with `openssl genpkey` for these
/// tests only).
const RSA_TEST_KEY: &str = "MIIEpAIBAAKCAQEAuJ9SOnkF6ZiRRgFXUR5ZwLzZNLNC/SMD+pyC1yKbSHTzQM5CdZOH5qkQy7UU1GeT+6QoTfNPX5ClJJ0tdji1JfHd+fzn2K0z57fo/mWXViG5tlQtJki8iUiGJZqNYVtxbLqj3LQF8gcqkWG0ooBub5rn7/vUFErxRcm+Al6qGjtIFczRBmnMJuhFMLmOcTSeJ91cZgVFm1qQYgAdNwepacj01ruTQNddIXmjwbHL5HIx5EU/HrCFR1u8yOMO7NmczdYyAw2/HkECKorMpMs5can38msqzfpgSUFAA6Wv+cSt8ijItQ6ZTVpUEA7NnUz1bwo50MCsIbsGjXJrvFN0gwIDAQABAoIBAAt6xJckLUzwEqBitvYxR+1nEK5pMxIgWj/7+Vq9KSChPPrbmGBNMxcRjhzMfqYSZq4v792g8l+D0/Dp4QjHz+OzHVVM93GOm3qeAdvHn1hYsn52z3Pg8/ApVUYDTSUvlWboWAYCH5iD/46Yn623BKbl3+QZKX+1hTkMqUbmcfc9exLWli7o67y3+mTvV7MO1Xbv2wnxWOCX1kwUh8WMyqEAA0Fo1t83EpSD7tzQvN9YE+x15I91NBQZ5eQ2NtZiHAr/Ap5PuiHOT2DmM+Du7T7isC8n1U+ifIiKkNYtZgjPaJ7PpuzkpBT9Rn5GyvGAet4lzuoVAezTZz9C+J5MnUkCgYEA+9aELQshqERodfA6m+6i4dZjhj1icpnhaTmBloYgV5wt3qZOVIu8MQeA2ls7FvxeVO9CloTANZIo9D9Zzbt0l9pLMmFeCVt+JBzjB/qxeHDD7c43lEhdletW29r6iOQqCfW8o2EhiaAh0RHt3fD+dQSGmOlkIiDtXo7C0A7rCaUCgYEAu6xtU8oV55kkFQ2AOgoLAyIWhDBGrPB3Zp0aVY8h+/A+SEtvLLyl9YjyOr9BpEDpQL9fMbhL72Hl06ZdZtlCMGrmzkvJcG8+LPHZ+h4VGAYd8meLsrMbvk2jcP2e45mw6lU8WtFoslijyA/zwNoj4pFLtoV9VO3PeTalkGpMnQcCgYEAyZs8qxabNiq1eZz8PnK3AJZxjDi+BEJ+Oo+n10m+wIQuEG0Qjgxjdtir5aJdVpRoLBRyOS9C9F/y2z2P9ewYdaxywH1EG7eb7usVMQEXa/TSVSDeS533FZqWKWFPaaFGqjyIbD7I63U/PTDePOu9uQ4LdoR4/f1gKW+eM5ONw2UCgYEAj98anM5iRn7HA4CrGVNTp949Bq9/rtpVnou3gXnN4rcE+CUkIFaqn3WRxOmT59h/OEy9LH+NbwFM0BlMpyjMrhN1xxagYZpWPtxVb4IaR6WA1bD9jkvya8xXDKrRYMgUsUAQmcrJiVecjyVzhxdzxR//u/fP4gjBMbpr6C8ldocCgYA2iXKtFaFkBxtSguVG7bLcDWETmkYL1qNq8oLTri+e1SHbaVy8mWIWk4wXqfdMnB2BsnjgAACCwDFuCPE1dbTP2S/4cXpfBiQkk8KKhIM5ciCXLY5DLl2zUt8Jka1Jda2wZN+p08SYH0Pto2rXv1IEfoaBKetGxcgY+AMjGy1rDQ==";

const ISSUER: &str = "https://oidc.example.test/id/ABCDEF";
const NOW: u64 = 1_765_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key() -> RsaKeyPair {
    let der = base64::engine::general_purpose::STANDARD
        .decode(RSA_TEST_KEY)
        .unwrap();
    RsaKeyPair::from_der(&der).unwrap()
}

fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap()
}

fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> serde_json::Value {
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&c.n), "e": b64(&c.e)})
}

fn ec_jwk(key: &EcdsaKeyPair, kid: &str) -> serde_json::Value {
    let point = key.public_key().as_ref();
    json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
}

enum Signer<'k> {
    Rsa(&'k RsaKeyPair),
    Ec(&'k EcdsaKeyPair),
    Hmac(&'k [u8]),
    None,
}

fn token(header: serde_json::Value, claims: serde_json::Value, signer: Signer<'_>) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = SystemRandom::new();
    let sig = match signer {
        Signer::Rsa(k) => {
            let mut sig = vec![0; k.public().modulus_len()];
            k.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                signed.as_bytes(),
                &mut sig,
            )
            .unwrap();
            sig
        }
        Signer::Ec(k) => k.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
        Signer::Hmac(secret) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            ring::hmac::sign(&key, signed.as_bytes()).as_ref().to_vec()
        }
        Signer::None => Vec::new(),
    };
    format!("{signed}.{}", b64(&sig))
}

fn claims() -> serde_json::Value {
    json!({
        "iss": ISSUER,
        "sub": "system:serviceaccount:apps:reader",
        "aud": ["sts.amazonaws.com"],
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "kubernetes.io": {"namespace": "apps"}
    })
}

struct Fixture {
    providers: OidcProviders,
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    path: PathBuf,
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("iamgate-oidc-{}-{name}.json", std::process::id()))
}

fn fixture(name: &str) -> Fixture {
    let rsa = rsa_key();
    let ec = ec_key();
    let path = temp_path(name);
    let jwks = json!({"keys": [rsa_jwk(&rsa, "rsa-1"), ec_jwk(&ec, "ec-1")]});
    std::fs::write(&path, jwks.to_string()).unwrap();
    let providers =
        OidcProviders::from_flags(&[format!("{ISSUER}={}", path.display())], &[]).unwrap();
    Fixture {
        providers,
        rsa,
        ec,
        path,
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn rs256_and_es256_tokens_verify() {
    let f = fixture("ok");
    let t = token(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        claims(),
        Signer::Rsa(&f.rsa),
    );
    let (v, p) = f.providers.verify(&t, at(NOW)).unwrap();
    assert_eq!(v.sub, "system:serviceaccount:apps:reader");
    assert_eq!(v.aud, vec!["sts.amazonaws.com".to_owned()]);
    assert_eq!(v.issuer_host_path, "oidc.example.test/id/ABCDEF");
    assert_eq!(
        p.arn("aws", "111122223333"),
        "arn:aws:iam::111122223333:oidc-provider/oidc.example.test/id/ABCDEF"
    );
    let t = token(
        json!({"alg": "ES256", "kid": "ec-1", "typ": "JWT"}),
        claims(),
        Signer::Ec(&f.ec),
    );
    assert_eq!(f.providers.verify(&t, at(NOW)).unwrap().0.sub, v.sub);
}

#[test]
fn algorithm_confusion_is_refused() {
    let f = fixture("alg");
    let c = claims();
    // alg none, with and without a signature part.
    let none = token(
        json!({"alg": "none", "kid": "rsa-1"}),
        c.clone(),
        Signer::None,
    );
    assert_eq!(
        f.providers.verify(&none, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    let none = token(json!({"alg": "none"}), c.clone(), Signer::None);
    assert_eq!(
        f.providers.verify(&none, at(NOW)).unwrap_err(),
        WebTokenError::NoKey
    );
    // HS256 keyed with the public key's bytes (the classic confusion).
    let pem_like = signature::RsaPublicKeyComponents::<Vec<u8>>::from(f.rsa.public()).n;
    let hs = token(
        json!({"alg": "HS256", "kid": "rsa-1"}),
        c.clone(),
        Signer::Hmac(&pem_like),
    );
    assert_eq!(
        f.providers.verify(&hs, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    let jwks_text = std::fs::read(&f.path).unwrap();
    let hs = token(
        json!({"alg": "HS256", "kid": "rsa-1"}),
        c.clone(),
        Signer::Hmac(&jwks_text),
    );
    assert_eq!(
        f.providers.verify(&hs, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    // The header may not switch a key's family.
    let swap = token(
        json!({"alg": "ES256", "kid": "rsa-1"}),
        c.clone(),
        Signer::Ec(&f.ec),
    );
    assert_eq!(
        f.providers.verify(&swap, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    let swap = token(
        json!({"alg": "RS256", "kid": "ec-1"}),
        c.clone(),
        Signer::Rsa(&f.rsa),
    );
    assert_eq!(
        f.providers.verify(&swap, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    // RS384/PS256 are not accepted for an RS256 key.
    let other = token(
        json!({"alg": "PS256", "kid": "rsa-1"}),
        c.clone(),
        Signer::Rsa(&f.rsa),
    );
    assert_eq!(
        f.providers.verify(&other, at(NOW)).unwrap_err(),
        WebTokenError::Algorithm
    );
    // A signature by a key of the right family but not in the set.
    let stranger = ec_key();
    let t = token(
        json!({"alg": "ES256", "kid": "ec-1"}),
        c.clone(),
        Signer::Ec(&stranger),
    );
    assert_eq!(
        f.providers.verify(&t, at(NOW)).unwrap_err(),
        WebTokenError::Signature
    );
    // crit headers are not understood, so refused.
    let t = token(
        json!({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"]}),
        c,
        Signer::Rsa(&f.rsa),
    );
    assert!(matches!(
        f.providers.verify(&t, at(NOW)).unwrap_err(),
        WebTokenError::Malformed(_)
    ));
}

#[test]
fn tampering_and_key_selection() {
    let f = fixture("tamper");
    let t = token(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        claims(),
        Signer::Rsa(&f.rsa),
    );
    let mut parts: Vec<&str> = t.split('.').collect();
    let mut other = claims();
    other["sub"] = json!("system:serviceaccount:kube-system:admin");
    let forged_payload = b64(other.to_string().as_bytes());
    parts[1] = &forged_payload;
    let forged = parts.join(".");
    assert_eq!(
        f.providers.verify(&forged, at(NOW)).unwrap_err(),
        WebTokenError::Signature
    );
    let t = token(
        json!({"alg": "RS256", "kid": "nope"}),
        claims(),
        Signer::Rsa(&f.rsa),
    );
    assert_eq!(
        f.providers.verify(&t, at(NOW)).unwrap_err(),
        WebTokenError::NoKey
    );
    // Without kid the set must have exactly one key (this one has two).
    let t = token(json!({"alg": "RS256"}), claims(), Signer::Rsa(&f.rsa));
    assert_eq!(
        f.providers.verify(&t, at(NOW)).unwrap_err(),
        WebTokenError::NoKey
    );
    for bad in ["", "a.b", "a.b.c.d", "x.y.z", &format!("{t}.")] {
        assert!(
            matches!(
                f.providers.verify(bad, at(NOW)).unwrap_err(),
                WebTokenError::Malformed(_)
            ),
            "{bad}"
        );
    }
}

#[test]
fn issuer_audience_and_times() {
    let f = fixture("claims");
    let sign = |c: serde_json::Value| {
        token(
            json!({"alg": "RS256", "kid": "rsa-1"}),
            c,
            Signer::Rsa(&f.rsa),
        )
    };
    let mut c = claims();
    c["iss"] = json!("https://oidc.example.test/id/OTHER");
    assert!(matches!(
        f.providers.verify(&sign(c), at(NOW)).unwrap_err(),
        WebTokenError::UnknownIssuer(_)
    ));
    // iss must match exactly (no trailing slash, no case folding).
    let mut c = claims();
    c["iss"] = json!(format!("{ISSUER}/"));
    assert!(matches!(
        f.providers.verify(&sign(c), at(NOW)).unwrap_err(),
        WebTokenError::UnknownIssuer(_)
    ));
    let mut c = claims();
    c["aud"] = json!("vault");
    assert_eq!(
        f.providers.verify(&sign(c), at(NOW)).unwrap_err(),
        WebTokenError::Audience
    );
    // azp, when present, is what IAM matches against the client ids.
    let mut c = claims();
    c["azp"] = json!("other-client");
    assert_eq!(
        f.providers.verify(&sign(c), at(NOW)).unwrap_err(),
        WebTokenError::Audience
    );
    let mut c = claims();
    c["aud"] = json!(["vault", "sts.amazonaws.com"]);
    assert!(f.providers.verify(&sign(c), at(NOW)).is_ok());
    // Expiry with a small skew.
    assert!(
        f.providers
            .verify(&sign(claims()), at(NOW + 3600 + CLOCK_SKEW_SECS - 1))
            .is_ok()
    );
    assert!(matches!(
        f.providers
            .verify(&sign(claims()), at(NOW + 3600 + CLOCK_SKEW_SECS))
            .unwrap_err(),
        WebTokenError::Expired { .. }
    ));
    assert_eq!(
        f.providers
            .verify(&sign(claims()), at(NOW + 3600 + CLOCK_SKEW_SECS))
            .unwrap_err()
            .sts_code()
            .0,
        "ExpiredTokenException"
    );
    assert_eq!(
        f.providers
            .verify(&sign(claims()), at(NOW - 600))
            .unwrap_err(),
        WebTokenError::NotYetValid
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(matches!(
        f.providers.verify(&sign(c), at(NOW)).unwrap_err(),
        WebTokenError::Malformed(_)
    ));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("sub");
    let e = f.providers.verify(&sign(c), at(NOW)).unwrap_err();
    assert_eq!(e.sts_code(), ("IDPRejectedClaim", 403));
}

#[test]
fn key_sets_are_reread_on_change_and_bad_ones_keep_the_good_keys() {
    let f = fixture("reload");
    let t = token(
        json!({"alg": "RS256", "kid": "rsa-1"}),
        claims(),
        Signer::Rsa(&f.rsa),
    );
    assert!(f.providers.verify(&t, at(NOW)).is_ok());
    // Rotated: only the EC key remains (a different length, so the change
    // is seen even within one mtime tick).
    std::fs::write(
        &f.path,
        json!({"keys": [ec_jwk(&f.ec, "ec-1")]}).to_string(),
    )
    .unwrap();
    assert_eq!(
        f.providers.verify(&t, at(NOW)).unwrap_err(),
        WebTokenError::NoKey
    );
    // A broken file keeps the last good keys.
    std::fs::write(&f.path, "{not json").unwrap();
    let e = token(
        json!({"alg": "ES256", "kid": "ec-1"}),
        claims(),
        Signer::Ec(&f.ec),
    );
    assert!(f.providers.verify(&e, at(NOW)).is_ok());
    let _ = std::fs::remove_file(&f.path);
}

#[test]
fn configuration_is_checked() {
    assert!(issuer_host_path("http://x.example").is_err());
    assert!(issuer_host_path("https://").is_err());
    assert!(issuer_host_path("https://x.example/?a=b").is_err());
    assert_eq!(
        issuer_host_path("https://x.example/p/").unwrap(),
        "x.example/p/"
    );
    assert!(matches!(
        OidcProviders::from_flags(&["nofile".into()], &[]),
        Err(OidcConfigError::Syntax(_))
    ));
    // The file system's own error is kept as the source.
    assert!(matches!(
        OidcProviders::from_flags(&[format!("{ISSUER}=/nonexistent/jwks.json")], &[]),
        Err(OidcConfigError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
    let f = fixture("config");
    let flag = format!("{ISSUER}={}", f.path.display());
    assert!(matches!(
        OidcProviders::from_flags(
            std::slice::from_ref(&flag),
            &["https://elsewhere.example=x".into()]
        ),
        Err(OidcConfigError::AudienceWithoutProvider(_))
    ));
    let p = OidcProviders::from_flags(&[flag], &[format!("{ISSUER}=my-client")]).unwrap();
    assert_eq!(
        p.iter().next().unwrap().audiences,
        vec!["my-client".to_owned()]
    );
    // JWKS without a usable signing key, or with a short RSA key.
    assert!(matches!(
        Jwks::parse(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
        Err(JwksError::NoSigningKey)
    ));
    assert!(matches!(
        Jwks::parse(r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#),
        Err(JwksError::ShortRsa { index: 0 })
    ));
    // Refusals keep their cause and say where.
    let e = Jwks::parse(r#"{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}"#).unwrap_err();
    assert!(
        matches!(
            &e,
            JwksError::NotBase64 {
                index: 0,
                name: "n",
                ..
            }
        ),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some(), "{e}");
    assert_eq!(e.to_string(), "keys[0].n: not base64url");
    assert!(matches!(Jwks::parse("{"), Err(JwksError::NotJson(_))));
    let _ = std::fs::remove_file(&f.path);
}
