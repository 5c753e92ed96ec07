"""A local JWT issuer for the end-to-end tests that identify callers the way
a deployment does: Envoy's `jwt_authn` filter verifies a token against the
issuer's JWKS (`local_jwks` in the bootstrap, `${jwks}`) and leaves its
payload in the request's metadata under `payload_in_metadata` (PAYLOAD_KEY);
iamgate maps a claim of it to a principal (`--jwt-principal`).

Also makes the tokens Envoy must refuse: signed by another key, unsigned
(`alg: none`), expired, for another issuer or audience.
"""

import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.iamgate.test"
AUDIENCE = "iamgate-e2e"
# The provider's `payload_in_metadata` in the test bootstraps.
PAYLOAD_KEY = "jwt_payload"
# `--jwt-principal` for users of the demo's production account.
DEMO_USERS = f"{PAYLOAD_KEY}:sub=arn:aws:iam::111111111111:user/{{claim}}"


class Issuer:
    """An RSA signing key and its JWKS."""

    KID = "e2e-1"

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.KID, alg="RS256", use="sig")
        # For `local_jwks.inline_string` in a YAML single-quoted scalar.
        self.jwks = json.dumps({"keys": [jwk]})

    def claims(self, sub, **extra):
        now = int(time.time())
        return {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now,
                "exp": now + 600, **extra}

    def token(self, sub, **extra):
        """A valid token for `sub`."""
        return jwt.encode(self.claims(sub, **extra), self.key, algorithm="RS256",
                          headers={"kid": self.KID})

    def bearer(self, sub, **extra):
        return {"authorization": f"Bearer {self.token(sub, **extra)}"}

    def forged(self, sub):
        """Tokens Envoy must refuse, by name."""
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        return {
            "another key": jwt.encode(self.claims(sub), other, algorithm="RS256",
                                      headers={"kid": self.KID}),
            "unsigned": jwt.encode(self.claims(sub), None, algorithm="none"),
            "expired": self.token(sub, iat=now - 7200, exp=now - 3600),
            "another issuer": self.token(sub, iss="https://evil.example"),
            "another audience": self.token(sub, aud="someone-else"),
        }
