"""Test certificates, made at test time with ``cryptography``: a CA, a server certificate for
127.0.0.1/localhost, an expired one, one for another host name, client certificates for mutual TLS (one
from the CA, one from an unrelated CA) and an unrelated CA to trust instead of the right one.

EC P-256 keys (fast to make); every file is PEM in ``Pki.root``. Nothing here is a secret worth keeping.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["KeyPair", "Pki", "make_pki"]

_NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its (unencrypted) key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Everything the TLS tests need, under ``root``."""

    root: Path
    ca: Path  #: the CA every good certificate chains to
    other_ca: Path  #: a CA nobody's certificate chains to ("unknown CA")
    server: KeyPair  #: 127.0.0.1 and localhost, valid now
    expired: KeyPair  #: 127.0.0.1 and localhost, expired yesterday
    wrong_host: KeyPair  #: kafka.invalid only
    client: KeyPair  #: a client certificate from ``ca`` (mutual TLS)
    client_pem: Path  #: ``client``'s certificate and key in one file
    stranger: KeyPair  #: a client certificate from ``other_ca``
    encrypted_key: Path  #: ``client``'s key under a passphrase


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - dt.timedelta(days=1)).not_valid_after(_NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, *, names: list[x509.GeneralName],
          client: bool = False, expired: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    start, end = ((_NOW - dt.timedelta(days=30), _NOW - dt.timedelta(days=1)) if expired
                  else (_NOW - dt.timedelta(days=1), _NOW + dt.timedelta(days=30)))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _write(root: Path, stem: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> KeyPair:
    cert, key = root / f"{stem}.crt", root / f"{stem}.key"
    cert.write_bytes(_cert_pem(pair[0]))
    key.write_bytes(_key_pem(pair[1]))
    key.chmod(0o600)
    return KeyPair(cert, key)


def make_pki(root: Path) -> Pki:
    """A fresh CA and every certificate of :class:`Pki`, written under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    ca, other = _ca("dbcost test CA"), _ca("some other CA")
    local: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    (root / "ca.crt").write_bytes(_cert_pem(ca[0]))
    (root / "other-ca.crt").write_bytes(_cert_pem(other[0]))
    client_pair = _leaf(ca, "dbcost-client", names=[], client=True)
    client = _write(root, "client", client_pair)
    client_pem = root / "client.pem"
    client_pem.write_bytes(_cert_pem(client_pair[0]) + _key_pem(client_pair[1]))
    encrypted = root / "client-encrypted.key"
    encrypted.write_bytes(_key_pem(client_pair[1], b"passphrase"))
    return Pki(
        root=root, ca=root / "ca.crt", other_ca=root / "other-ca.crt",
        server=_write(root, "server", _leaf(ca, "127.0.0.1", names=local)),
        expired=_write(root, "expired", _leaf(ca, "127.0.0.1", names=local, expired=True)),
        wrong_host=_write(root, "wrong-host", _leaf(ca, "kafka.invalid", names=[x509.DNSName("kafka.invalid")])),
        client=client, client_pem=client_pem,
        stranger=_write(root, "stranger", _leaf(other, "stranger", names=[], client=True)),
        encrypted_key=encrypted,
    )
