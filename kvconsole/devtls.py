"""A development certificate authority and the server certificate it issues.

The SDKs refuse bearer tokens over plain HTTP, so even a laptop deployment serves HTTPS.
The CA is made once and kept in `var/tls/`; clients trust its certificate
(`connection_verify=` or REQUESTS_CA_BUNDLE). The server certificate is issued again
whenever the host names it must cover change or it nears its end.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import secretfiles

CA_YEARS = 10
# Browsers refuse server certificates valid for longer than 398 days.
SERVER_DAYS = 397
RENEW_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    ca_certificate: Path
    certificate: Path
    private_key: Path


def ensure(directory: Path, dns_names: list[str], ip_addresses: list[str]) -> TlsFiles:
    """The CA (made if missing) and a server certificate for these names, issued again if it
    does not cover them or expires within RENEW_DAYS."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key_path = directory / "ca.pem", directory / "ca-key.pem"
    files = TlsFiles(ca_path, directory / "server.pem", directory / "server-key.pem")
    if not ca_path.exists() or not ca_key_path.exists():
        _write_ca(ca_path, ca_key_path)
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    wanted = _alternative_names(dns_names, ip_addresses)
    if not _covers(files.certificate, wanted):
        _write_server(files, ca, ca_key, wanted)
    return files


def _alternative_names(
    dns_names: list[str], ip_addresses: list[str]
) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.DNSName(name) for name in dict.fromkeys(dns_names)]
        + [x509.IPAddress(ipaddress.ip_address(address)) for address in dict.fromkeys(ip_addresses)]
    )


def _covers(path: Path, wanted: x509.SubjectAlternativeName) -> bool:
    if not path.exists():
        return False
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return set(names) == set(wanted) and left > datetime.timedelta(days=RENEW_DAYS)


def _write_ca(certificate_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvconsole development CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    secretfiles.write_secret_file(key_path, _private_pem(key))
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_server(
    files: TlsFiles,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: x509.SubjectAlternativeName,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvconsole")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    secretfiles.write_secret_file(files.private_key, _private_pem(key))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
