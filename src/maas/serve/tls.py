"""TLS by default on a public address: a self-signed certificate made once and reused.

`maas serve --host 0.0.0.0` without `--tls-cert` serves TLS with a certificate of its own, kept
in ~/.config/maas/tls/ (or $MAAS_TLS_DIR): clients trust it by passing that file as their CA
(`tls_root_cert=`). Its names are localhost, this machine's name and addresses, and the bound
address; a real certificate (`--tls-cert/--tls-key`) is better, and `--no-tls` turns it off.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
from pathlib import Path

from maas.base.errors import ServerError

TLS_DIR_ENV = "MAAS_TLS_DIR"
VALID_DAYS = 825  # the longest validity clients still accept for a server certificate


def default_tls_dir() -> Path:
    """$MAAS_TLS_DIR, else ~/.config/maas/tls."""
    chosen = os.environ.get(TLS_DIR_ENV)
    return Path(chosen) if chosen else Path.home() / ".config" / "maas" / "tls"


def machine_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a client may use to reach a server bound to host."""
    hostname = socket.gethostname()
    names = sorted({"localhost", hostname, socket.getfqdn()} - {""})
    addresses = {"127.0.0.1", "::1"}
    with contextlib.suppress(OSError):  # no resolvable name: loopback and the bound address
        addresses |= set(socket.gethostbyname_ex(hostname)[2])
    try:
        bound = ipaddress.ip_address(host)
        if not bound.is_unspecified:
            addresses.add(str(bound))
    except ValueError:
        names = sorted({*names, host})
    return names, sorted(addresses)


def self_signed_certificate(folder: Path, host: str) -> tuple[Path, Path, bool]:
    """(certificate, key, made now): the one in folder, else a new one for this machine."""
    cert, key = folder / "server.pem", folder / "server.key"
    if cert.is_file() and key.is_file():
        return cert, key, False
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError as missing:
        raise ServerError(
            "a self-signed certificate needs the cryptography package (pip install "
            "cryptography), or pass --tls-cert/--tls-key, or --no-tls"
        ) from missing
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.gethostname())])
    dns, ips = machine_names(host)
    alternatives = [x509.DNSName(n) for n in dns] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ips
    ]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    key.touch(mode=0o600)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key, True
