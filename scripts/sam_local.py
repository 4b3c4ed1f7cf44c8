"""What `sam local` needs on a machine that reaches no image registry.

  image DEBS_DIR CA_DIR   the stand-in for public.ecr.aws/lambda/provided:al2023-arm64,
                          loaded into Docker once per content; prints its name
  template BUILD_DIR OUT ADDRESS
                          the built template for local runs, and its --env-vars file
  relay ADDRESS/PREFIX CA_DIR PORT[:tls]...
                          relays from the Docker bridge's host address to loopback,
                          for peers on the bridge's subnet only

The stand-in exists only because these build machines reach no image
registry: it holds what a `provided.al2023` function uses (the C library,
libgcc, CA certificates, a shell for SAM's one build step), from Debian's
arm64 packages. On a machine that reaches the registry, SAM uses AWS's image.
"""

import asyncio
import datetime
import hashlib
import io
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import tarfile
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from samcli.yamlhelper import yaml_dump, yaml_parse

REPOSITORY = "tollgate-sam-local/provided"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# busybox's applets SAM's build step (`mv`, `chmod`) and a shell need.
APPLETS = ["sh", "mv", "chmod", "cp", "rm", "mkdir", "ls", "cat", "env"]
# Variables the local run adds beside the template's own: where the AWS
# APIs are (DynamoDB Local, moto) instead of AWS's endpoints.
LOCAL_VARIABLES = [
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_SQS",
]
# The addresses the containers reach through the relays (other values, such
# as the capability issuer, are names, left as they are).
RELAYED = LOCAL_VARIABLES
# An https URL, as the function requires anywhere but loopback: its relay
# speaks TLS, with a certificate of a local authority the image trusts.
RELAYED_TLS = ["TOLLGATE_GITHUB_KEYS_URL"]


def docker(*args, **kw):
    return subprocess.run(["docker", *args], check=True, **kw)


def authority(ca_dir):
    """The local certificate authority (made once): the stand-in image
    trusts it, and the TLS relay's certificate is signed by it."""
    cert_path, key_path = os.path.join(ca_dir, "ca.pem"), os.path.join(ca_dir, "ca.key")
    if not os.path.exists(cert_path):
        os.makedirs(ca_dir, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tollgate sam local relay CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        with open(key_path, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return cert, key


def tls_context(ca_dir, address):
    """A server certificate for `address`, signed by the local authority."""
    ca_cert, ca_key = authority(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            # webpki requires the server-auth usage stated.
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as d:
        cert_file, key_file = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert_file, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        context.load_cert_chain(cert_file, key_file)
    return context


def image(debs_dir, ca_dir):
    debs = sorted(f for f in os.listdir(debs_dir) if f.endswith(".deb"))
    if not debs:
        sys.exit(f"no .deb files in {debs_dir}")
    digest = hashlib.sha256()
    for name in debs:
        digest.update(name.encode())
        with open(os.path.join(debs_dir, name), "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    ca_cert, _ = authority(ca_dir)
    with open(CA_BUNDLE, "rb") as f:
        ca = f.read() + ca_cert.public_bytes(serialization.Encoding.PEM)
    digest.update(ca)
    with open(__file__, "rb") as f:
        digest.update(f.read())
    # The content hash in the repository's name, not the tag: SAM builds
    # its invoke image as REPOSITORY:rapid-arm64 and reuses one it finds.
    name = f"{REPOSITORY}-{digest.hexdigest()[:12]}:al2023-arm64"
    found = subprocess.run(["docker", "image", "inspect", name], capture_output=True)
    if found.returncode == 0:
        print(name)
        return
    with tempfile.TemporaryDirectory() as root:
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", os.path.join(debs_dir, deb), root], check=True)
        for d in ["var/task", "var/runtime", "var/rapid", "opt", "tmp", "etc/ssl/certs"]:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        for applet in APPLETS:
            link = os.path.join(root, "bin", applet)
            if not os.path.lexists(link):
                os.symlink("busybox", link)
        with open(os.path.join(root, CA_BUNDLE.lstrip("/")), "wb") as f:
            f.write(ca)
        with open(os.path.join(root, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        with open(os.path.join(root, "etc/group"), "w") as f:
            f.write("root:x:0:\n")
        docker("load", input=image_archive(root, name), stdout=subprocess.DEVNULL)
    print(name)


def image_archive(root, name):
    """A `docker save` archive of one layer, marked linux/arm64 (what
    `docker import` cannot mark on every engine)."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(root, arcname=".")
    layer = layer_buf.getvalue()
    config = json.dumps({
        "architecture": "arm64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/var/task",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for member, data in [("layer.tar", layer), (config_name, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def template(build_dir, out_dir, address):
    """The built template with absolute code paths and the local endpoint
    variables declared (SAM passes a function only the variables its
    template declares), and an --env-vars file of the running stack's
    values, the relayed loopback addresses replaced by the bridge's."""
    with open(os.path.join(build_dir, "template.yaml")) as f:
        doc = yaml_parse(f.read())
    declared = set(LOCAL_VARIABLES)
    variables = doc["Globals"]["Function"].setdefault("Environment", {}).setdefault("Variables", {})
    declared.update(variables)
    for name in LOCAL_VARIABLES:
        variables.setdefault(name, "")
    for resource in doc["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        props["CodeUri"] = os.path.abspath(os.path.join(build_dir, props["CodeUri"]))
        declared.update(props.get("Environment", {}).get("Variables", {}))
    values = {name: os.environ[name] for name in sorted(declared) if os.environ.get(name)}
    for name in RELAYED:
        if name in values:
            values[name] = values[name].replace("http://127.0.0.1:", f"http://{address}:")
    for name in RELAYED_TLS:
        if name in values:
            values[name] = values[name].replace("http://127.0.0.1:", f"https://{address}:")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "template.yaml"), "w") as f:
        f.write(yaml_dump(doc))
    with open(os.path.join(out_dir, "env.json"), "w") as f:
        json.dump({"Parameters": values}, f, indent=2)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def relay_to(port, subnet):
    """Relays a connection from the bridge's subnet (its TLS, if any, ended
    here) to 127.0.0.1:port; any other peer is closed at once."""
    async def serve(reader, writer):
        peer = ipaddress.ip_address(writer.get_extra_info("peername")[0])
        if peer not in subnet:
            writer.close()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))
    return serve


async def relay(interface, ca_dir, specs):
    # Only ever the bridge's host address: never every interface.
    bridge = ipaddress.ip_interface(interface)
    address = str(bridge.ip)
    if bridge.ip.is_unspecified or not bridge.ip.is_private:
        sys.exit(f"relay: {address!r} is not a private host address")
    servers = []
    for spec in specs:
        port, _, tls = spec.partition(":")
        context = tls_context(ca_dir, address) if tls == "tls" else None
        serve = relay_to(int(port), bridge.network)
        servers.append(await asyncio.start_server(serve, address, int(port), ssl=context))
    print(f"relaying {', '.join(f'{address}:{s}' for s in specs)} to 127.0.0.1", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "image":
        image(*args)
    elif command == "template":
        template(*args)
    elif command == "relay":
        asyncio.run(relay(args[0], args[1], args[2:]))
    else:
        sys.exit(__doc__)
