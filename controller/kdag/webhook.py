"""The validating webhooks for DAGs and DAGRuns: what the CRD schema and CEL cannot check (cycles, above all;
a run's params against its DAG's schemas; names too long for what kdag derives from them).

Served by kopf's WebhookServer. What reaches them (`webhook_configuration`; the chart's
`templates/webhook.yaml` says the same) is only what they judge: creating a DAG or DAGRun, and updating a
DAG's spec. A finalizer removed, labels or annotations edited, a status written, a delete: none of these
depends on the webhook answering, so a DAG stays editable and deletable while no controller runs. For a
controller on the host, `self_signed_certificate` makes the certificate the API server trusts (the
certificate is its own CA bundle).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kdag_runner import keys

from kdag import params
from kdag.api.models import GROUP, VERSION, DAGSpec
from kdag.api.validation import check_dag_spec, dagrun_problems, describe, name_problems
from kdag.handlers.runtime import Runtime
from kdag.kube import DAG, KubeApiError

logger = logging.getLogger("kdag.webhook")

DAG_WEBHOOK = "dags.kdag.dev"
"""The DAG validator's handler id: kopf serves it at `/dags.kdag.dev`."""
DAGRUN_WEBHOOK = "dagruns.kdag.dev"
"""The DAGRun validator's handler id: kopf serves it at `/dagruns.kdag.dev`."""
SPEC_CHANGED = "request.operation != 'UPDATE' || object.spec != oldObject.spec"
"""The DAG webhook's matchCondition: an UPDATE that leaves the spec alone (kopf's finalizer and
annotations, labels, `kubectl delete`'s own updates) never calls it."""


@dataclass(frozen=True)
class Webhook:
    """One validating webhook: the handler, the kind and operations it judges, and when it is called."""

    id: str
    plural: str
    operations: tuple[str, ...]
    match_conditions: tuple[tuple[str, str], ...] = ()
    """(name, CEL expression): the API server calls the webhook only when every one holds."""


WEBHOOKS = (
    Webhook(DAG_WEBHOOK, keys.DAG_PLURAL, ("CREATE", "UPDATE"), (("spec-changed", SPEC_CHANGED),)),
    # A DAGRun's spec never changes (a CEL rule refuses it): only its creation is judged.
    Webhook(DAGRUN_WEBHOOK, keys.DAGRUN_PLURAL, ("CREATE",)),
)


def webhook_configuration(name: str, url: str, ca_bundle: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration a controller on the host registers: its `WEBHOOKS` at `url`."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kdag"}},
        "webhooks": [
            {
                "name": hook.id,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": 10,
                "clientConfig": {
                    "url": f"{url.rstrip('/')}/{hook.id}",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "resources": [hook.plural],
                        "operations": list(hook.operations),
                        "scope": "Namespaced",
                    }
                ],
                **(
                    {"matchConditions": [{"name": n, "expression": e} for n, e in hook.match_conditions]}
                    if hook.match_conditions
                    else {}
                ),
            }
            for hook in WEBHOOKS
        ],
    }


def _same_spec(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    return old is not None and new is not None and old.get("spec") == new.get("spec")


def validate_dag(
    spec: kopf.Spec,
    name: str | None = None,
    operation: str | None = None,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    """Refuse a DAG whose graph or fields are wrong, naming the task, the field and the value (or the cycle);
    and a new DAG whose name is too long for the names of its runs' pods.

    The check is `kdag.api.validation`'s, the same `kdag compile`/`apply`/`run --local` and the handlers
    make, so what the CLI accepts is admitted here. An update that leaves the spec alone is never judged
    (`SPEC_CHANGED` keeps it from being sent at all).
    """
    if operation == "UPDATE" and _same_spec(old, new):
        return
    problems = check_dag_spec(spec)[1]
    if operation == "CREATE" and name:
        problems = [*name_problems(keys.DAG_KIND, name), *problems]
    if problems:
        raise kopf.AdmissionError(describe(problems), code=422)


async def validate_dagrun(
    spec: kopf.Spec,
    memo: Runtime,
    warnings: list[str],
    name: str | None = None,
    namespace: str | None = None,
    **_: Any,
) -> None:
    """Refuse a new DAGRun that could never run: a name too long for its pods' names, a data interval that
    ends before it starts, params or conf its DAG's param schemas refuse (or a required param missing).

    The DAG is read from the API server. One that does not exist (yet: a DAG and a run in one apply reach
    the API server in either order) or is invalid admits the run: the controller holds it, Stalled, until the
    DAG exists and is valid, and checks its params then. Undeclared params are admitted with a warning.
    """
    problems = name_problems(keys.DAGRUN_KIND, name) if name else []
    dag = await _dag_of(memo, namespace, spec)
    problems.extend(dagrun_problems(spec, dag))
    if problems:
        raise kopf.AdmissionError(describe(problems), code=422)
    if dag is not None:
        for param in params.undeclared(dag, (spec.get("params") or {})):
            warnings.append(f"param {param!r} is not declared by DAG {spec['dagRef']['name']!r}")


async def _dag_of(memo: Runtime, namespace: str | None, spec: Mapping[str, Any]) -> DAGSpec | None:
    """The run's DAG, when it exists and is valid; None otherwise (or when it cannot be read now)."""
    dag_name = (spec.get("dagRef") or {}).get("name")
    if not namespace or not dag_name:
        return None
    try:
        found = await memo.api.get(DAG, namespace, dag_name)
    except KubeApiError as error:
        logger.warning("cannot read DAG %s/%s to check a new run of it: %s", namespace, dag_name, error)
        return None
    if found is None:
        return None
    model, problems = check_dag_spec(found.get("spec") or {})
    return model if model is not None and not problems else None


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
