"""The manifests a DAG file becomes (the `{dag}-source-{hash}` ConfigMap, the DAG), and how `kdag compile`
writes them: one multi-document YAML text, or one file per manifest for a GitOps repository."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kdag_runner import keys

from kdag import names
from kdag.api.models import API_VERSION, DAGSpec

# A GitOps tool prunes what leaves the repository: an earlier version of a DAG's code that a run under way
# still mounts would go with it, and that run's next pod would wait for its volume. These annotations keep
# Argo CD and Flux from pruning source versions; `kdag apply` deletes the ones no run reads.
KEEP_ON_PRUNE = {
    "argocd.argoproj.io/sync-options": "Prune=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def source_configmap(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The ConfigMap `{dag}-source-{hash}` the task pods mount as the DAG's folder (`kdag.dag_sources`):
    named by its content and immutable, so the DAG spec that names it (and each DAGVersion of that spec)
    pins one version of the code; never pruned by a GitOps tool (`KEEP_ON_PRUNE`)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.source_configmap_name(name, data),
            "labels": names.labels(name),
            "annotations": dict(KEEP_ON_PRUNE),
        },
        "immutable": True,
        "data": dict(data),
    }


def dag_manifest(name: str, spec: DAGSpec) -> dict[str, Any]:
    """The DAG object, ready for `kubectl apply`."""
    return {
        "apiVersion": API_VERSION,
        "kind": keys.DAG_KIND,
        "metadata": {"name": name, "labels": {names.MANAGED_BY_LABEL: names.MANAGED_BY}},
        "spec": spec.to_kube(),
    }


class _ManifestDumper(yaml.SafeDumper):
    """Writes multi-line strings (the DAG file, inline sources) as literal blocks people can read."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text and not any(line != line.rstrip() for line in text.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def manifests_yaml(manifests: list[dict[str, Any]]) -> str:
    """Manifests as one multi-document YAML text, in apply order (the source before the DAG)."""
    return yaml.dump_all(manifests, Dumper=_ManifestDumper, sort_keys=False, width=1000)


def write_manifests(manifests: list[dict[str, Any]], directory: Path) -> list[Path]:
    """One file per manifest, `{kind}-{name}.yaml`, for a GitOps repository."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests:
        file = directory / _file_name(manifest)
        file.write_text(manifests_yaml([manifest]), encoding="utf-8")
        written.append(file)
    return written


def remove_replaced_sources(manifests: list[dict[str, Any]], directory: Path) -> list[Path]:
    """Delete the files of the DAGs' earlier source ConfigMaps from `directory` (`write_manifests` named
    them by content): the repository then holds one version, and the GitOps tool prunes the others."""
    dags = [str(m["metadata"]["name"]) for m in manifests if m.get("kind") == keys.DAG_KIND]
    current = {_file_name(manifest) for manifest in manifests}
    removed = []
    for file in sorted(directory.glob("configmap-*.yaml")):
        configmap = file.name.removeprefix("configmap-").removesuffix(".yaml")
        if file.name not in current and any(names.is_source_configmap_of(dag, configmap) for dag in dags):
            file.unlink()
            removed.append(file)
    return removed


def _file_name(manifest: Mapping[str, Any]) -> str:
    return f"{str(manifest.get('kind', 'object')).lower()}-{manifest['metadata']['name']}.yaml"
