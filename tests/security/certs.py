"""Certificates for the security tests, made with the ``cryptography`` package: a CA, server
and client certificates it signs (valid, expired), and a second, unrelated CA."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Issued:
    cert: str  # PEM file paths
    key: str
    serial: int


class Authority:
    """A CA that writes what it issues into DIRECTORY."""

    def __init__(self, directory: str, name: str = "cacheproxy-test-ca") -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = os.path.join(directory, f"{name}.pem")
        _write(self.ca_file, self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool = True, client: bool = False, expired: bool = False,
              file_stem: str | None = None) -> Issued:
        """A certificate for NAME: a server's (localhost, 127.0.0.1), a client's, or with CLIENT
        and SERVER both, a peer's (the peer port needs both usages)."""
        key = ec.generate_private_key(ec.SECP256R1())
        if expired:
            before, after = NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=1)
        else:
            before, after = NOW - datetime.timedelta(hours=1), NOW + datetime.timedelta(days=10)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.ExtendedKeyUsage(
                ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
                + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client or not server else [])), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = os.path.join(self.directory, file_stem or name)
        issued = Issued(stem + ".crt", stem + ".key", serial)
        write_pair(issued, cert, key)
        return issued


def write_pair(issued: Issued, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write(issued.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    _write(issued.cert, cert.public_bytes(serialization.Encoding.PEM))


def _write(path: str, data: bytes) -> None:
    """Write-then-rename, the way a Secret volume swaps its files."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def serial_of(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number
