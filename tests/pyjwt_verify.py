"""Verifies a Tollgate capability offline with PyJWT (an independent JWT
implementation, not Tollgate's code) against a JWKS document, as a
third-party service would, with the recipe of docs/api.md ("Verifying
offline"): `iss`, then `aud` against this verifier's audience (if given)
and `own` against the owners it accepts (if given). Prints the verified
claims as JSON; a refusal exits 1 naming the reason.

usage: pyjwt_verify.py JWKS_JSON CAPABILITY ISSUER [AUDIENCE|- [OWNER,OWNER...]]
"""
import json
import sys

import jwt

jwks, capability, issuer = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
my_audience = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
my_owners = sys.argv[5].split(",") if len(sys.argv) > 5 else None
kid = jwt.get_unverified_header(capability)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(
    capability,
    key=jwt.PyJWK(key).key,
    # The key's algorithm, never the header's: EdDSA or ES256.
    algorithms=[key["alg"]],
    issuer=issuer,
    options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss", "own"], "verify_aud": False},
)
aud = claims.get("aud")  # absent: meant for every audience
if aud is not None and my_audience not in (aud if isinstance(aud, list) else [aud]):
    sys.exit("AUDIENCE_NOT_ALLOWED")
if my_owners is not None and claims["own"] not in my_owners:
    sys.exit("OWNER_NOT_ALLOWED")
print(json.dumps(claims))
