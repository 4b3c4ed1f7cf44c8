#!/usr/bin/env python3
"""A stand-in for GitHub's secret-scanning keys, for tests on loopback.

  scanner_keys.py init DIR        a P-256 key pair in DIR (once): the private
                                  key DIR/scanner-key.pem (PKCS#8), and
                                  DIR/public/public_keys.json in the shape of
                                  GitHub's document
  scanner_keys.py serve DIR PORT  serves DIR/public on 127.0.0.1:PORT

The tests sign reports with the private key, as GitHub signs its own; the
validate function reads the public document from the served URL. A
development tool: nothing of it is deployed.
"""
import hashlib
import http.server
import json
import os
import sys
from functools import partial

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def init(folder):
    private_path = os.path.join(folder, "scanner-key.pem")
    public_dir = os.path.join(folder, "public")
    os.makedirs(public_dir, exist_ok=True)
    if not os.path.exists(private_path):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    with open(private_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    public = key.public_key()
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    document = {"public_keys": [{
        "key_identifier": hashlib.sha256(der).hexdigest(),
        "key": pem,
        "is_current": True,
    }]}
    with open(os.path.join(public_dir, "public_keys.json"), "w") as f:
        json.dump(document, f)


def serve(folder, port):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=os.path.join(folder, "public"))
    http.server.ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "init":
        init(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
