#!/usr/bin/env python3
"""An HTTPS endpoint in front of moto_server, so the binaries' TLS clients are tested for real.

Makes a throwaway certificate authority and, signed by it, a certificate for `localhost` and
127.0.0.1; writes the authority beside the system's roots into CA_BUNDLE (the file the tests point
SSL_CERT_FILE at, which both the AWS SDK's and object_store's clients read their roots from);
then ends TLS on PORT and relays each connection's bytes to the emulator unchanged.

Usage: tls_aws.py UPSTREAM_URL PORT CA_BUNDLE
"""

import datetime
import ipaddress
import os
import socket
import ssl
import sys
import tempfile
import threading
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"


def certificate(subject, issuer, key, signer, ca, names=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(signer, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def server_context(bundle):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("tally test authority", "tally test authority", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate("localhost", "tally test authority", key, ca_key, ca=False,
                       names=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
    system = open(SYSTEM_ROOTS, "rb").read() if os.path.exists(SYSTEM_ROOTS) else b""
    with open(bundle, "wb") as f:
        f.write(system + b"\n" + pem(ca))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile(suffix=".pem") as chain:
        chain.write(pem(leaf) + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        chain.flush()
        ctx.load_cert_chain(chain.name)
    return ctx


def pump(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(ctx, conn, upstream):
    try:
        client = ctx.wrap_socket(conn, server_side=True)
        server = socket.create_connection(upstream)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    threading.Thread(target=pump, args=(server, client), daemon=True).start()
    pump(client, server)


def main():
    upstream_url, port, bundle = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    up = urllib.parse.urlsplit(upstream_url)
    ctx = server_context(bundle)
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=relay, args=(ctx, conn, (up.hostname, up.port)), daemon=True).start()


if __name__ == "__main__":
    main()
