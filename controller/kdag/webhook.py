"""The validating webhook for DAGs: what the CRD schema and CEL cannot check (cycles, above all).

Served by kopf's WebhookServer. For a controller on the host, `self_signed_certificate` makes the
certificate the API server trusts (the certificate is its own CA bundle).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kdag.api.validation import dag_spec_problems


def validate_dag(spec: kopf.Spec, **_: Any) -> None:
    """Refuse a DAG whose graph or fields are wrong, naming the cycle, task or field.

    The check is `kdag.api.validation`'s, the same `kdag compile`/`apply`/`run --local` and the handlers
    make, so what the CLI accepts is admitted here.
    """
    problems = dag_spec_problems(spec)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=422)


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """Write a certificate and key for `host` (an IP or DNS name) valid for one year; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile = directory / "webhook.crt"
    pkeyfile = directory / "webhook.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pkeyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pkeyfile.chmod(0o600)
    return certfile, pkeyfile
