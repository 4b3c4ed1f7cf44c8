"""The local development JWT issuer: an RSA key in .run/ that stands in for
the identity provider (Cognito and the like) behind the HTTP API's JWT
authorizer. `local_gateway.py` verifies with the public half of the same
key and the constants below, so the two always agree.

usage:
  dev_issuer.py init PATH
  dev_issuer.py token --key PATH --sub alice [--iss ISSUER] [--aud AUDIENCE]
                      [--ttl SECONDS] [--exp-offset SECONDS] [--nbf-offset SECONDS]

Development only: anyone with the key file mints any identity.
"""
import argparse
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# The one definition of the local issuer; the gateway's parameter defaults
# (JwtIssuer, JwtAudience) come from here.
ISSUER = "tollgate-dev-issuer"
AUDIENCE = "tollgate-local"
KEY_ID = "dev"
ALGORITHM = "RS256"
DEFAULT_TTL = 3600


def init_key(path):
    """Creates an RSA 2048 private key PEM at `path` (mode 0600) unless one
    is there; returns True when it wrote one."""
    if os.path.exists(path):
        return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL: two concurrent inits never interleave; the file is never
    # readable by others, not even for an instant.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return True


def load_private_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_key(path):
    """The verification key of the issuer whose private key is at `path`."""
    return load_private_key(path).public_key()


def mint(key_path, sub, iss=ISSUER, aud=AUDIENCE, ttl=DEFAULT_TTL,
         exp_offset=None, nbf_offset=None, extra=None, now=None):
    """An RS256 JWT with sub, iss, aud, iat, exp (now + exp_offset when
    given, else now + ttl), nbf (now + nbf_offset) when given, and any
    `extra` claims."""
    now = int(time.time() if now is None else now)
    claims = {"sub": sub, "iss": iss, "aud": aud, "iat": now,
              "exp": now + (ttl if exp_offset is None else exp_offset)}
    if nbf_offset is not None:
        claims["nbf"] = now + nbf_offset
    claims.update(extra or {})
    return jwt.encode(claims, load_private_key(key_path), algorithm=ALGORITHM,
                      headers={"kid": KEY_ID})


def main(argv=None):
    p = argparse.ArgumentParser(description="The local development JWT issuer.")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="create the issuer's private key if missing")
    i.add_argument("path")
    t = sub.add_parser("token", help="print a signed JWT")
    t.add_argument("--key", required=True)
    t.add_argument("--sub", required=True)
    t.add_argument("--iss", default=ISSUER)
    t.add_argument("--aud", default=AUDIENCE)
    t.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    t.add_argument("--exp-offset", type=int, help="exp = now + this (negative: already expired)")
    t.add_argument("--nbf-offset", type=int, help="nbf = now + this")
    args = p.parse_args(argv)
    if args.command == "init":
        init_key(args.path)
        print(args.path)
    else:
        print(mint(args.key, args.sub, iss=args.iss, aud=args.aud, ttl=args.ttl,
                   exp_offset=args.exp_offset, nbf_offset=args.nbf_offset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
