"""Verifies a Tollgate capability offline with PyJWT (an independent JWT
implementation, not Tollgate's code) against a JWKS document, as a
third-party service would. Prints the verified claims as JSON.

usage: pyjwt_verify.py JWKS_JSON CAPABILITY ISSUER
"""
import json
import sys

import jwt

jwks, capability, issuer = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
kid = jwt.get_unverified_header(capability)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(
    capability,
    key=jwt.PyJWK(key).key,
    algorithms=["EdDSA"],
    issuer=issuer,
    options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss"]},
)
print(json.dumps(claims))
