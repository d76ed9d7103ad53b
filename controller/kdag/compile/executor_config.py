"""The image, resources, env, nodeSelector and tolerations of a Python task from its
`executor_config={"pod_override": ...}` (KubernetesExecutor's spelling; docs/design.md, "The image of a
Python task"), and what of it kdag does not read (warned about by `unhonoured.load_warnings`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kdag_runner.airflow import DagTask

from kdag.compile.errors import DefinitionError

POD_OVERRIDE_READ = (
    "kdag reads only the image, resources and env of the pod_override's container 'base', and the pod's"
    " nodeSelector and tolerations"
)
_BASE_CONTAINER = "base"  # KubernetesExecutor's name of the task container in a pod_override
_KUBE_KEY = re.compile(r"_([a-z0-9])")
_VERBATIM_MAPS = frozenset({"limits", "requests", "labels", "annotations", "nodeSelector"})


def executor_config_fields(where: str, task: DagTask) -> tuple[dict[str, Any], list[str]]:
    """The TaskSpec fields of a task's `executor_config={"pod_override": ...}` (KubernetesExecutor's
    spelling), and the pod_override fields kdag does not read (warned about by `load_warnings`).

    Of the container named `base`: `image`, `resources` (requests, limits) and `env` (value or valueFrom)
    become the task's `image`, `resources` and `env`. The pod_override is a dict in Kubernetes' camelCase,
    or a `kubernetes.client` V1Pod (read with its `to_dict()`, snake_case; kubernetes is not imported).
    """
    config = (getattr(task, "options", None) or {}).get("executor_config")
    if config is None:
        return {}, []
    if not isinstance(config, Mapping):
        raise DefinitionError(
            f"{where}: executor_config must be a dict such as {{'pod_override': k8s.V1Pod(...)}},"
            f" not {type(config).__name__}"
        )
    ignored = [f"[{key!r}]" for key, value in config.items() if key != "pod_override" and _is_set(value)]
    pod = config.get("pod_override")
    if pod is None:
        return {}, ignored
    if not isinstance(pod, Mapping):
        to_dict = getattr(pod, "to_dict", None)
        pod = to_dict() if callable(to_dict) else None
        if not isinstance(pod, Mapping):
            raise DefinitionError(
                f"{where}: executor_config's pod_override must be a kubernetes V1Pod or a dict,"
                f" not {type(config['pod_override']).__name__}"
            )
    pod = _kube_form(pod)
    outside = ("apiVersion", "kind", "spec")  # what a V1Pod is, and its spec (read below)
    ignored += [f"pod_override.{k}" for k, v in pod.items() if k not in outside and _is_set(v)]
    pod_spec = pod.get("spec") or {}
    if not isinstance(pod_spec, Mapping):
        raise DefinitionError(f"{where}: executor_config's pod_override.spec must be a PodSpec (a dict)")
    read_spec = ("containers", "nodeSelector", "tolerations")
    ignored += [f"pod_override.spec.{k}" for k, v in pod_spec.items() if k not in read_spec and _is_set(v)]
    fields: dict[str, Any] = {}
    # Where the pod may run: KubernetesExecutor users put it here, and kdag's task fields mean the same.
    if _is_set(pod_spec.get("nodeSelector")):
        fields["nodeSelector"] = dict(pod_spec["nodeSelector"])
    if _is_set(pod_spec.get("tolerations")):
        fields["tolerations"] = list(pod_spec["tolerations"])
    for index, container in enumerate(pod_spec.get("containers") or []):
        name = container.get("name") if isinstance(container, Mapping) else None
        if name != _BASE_CONTAINER:
            ignored.append(f"pod_override.spec.containers[{name or index!r}]")
            continue
        at = f"pod_override.spec.containers['{_BASE_CONTAINER}']"
        for key, value in container.items():
            if key in ("name", "image", "resources", "env") or not _is_set(value):
                continue
            ignored.append(f"{at}.{key}")
        if _is_set(container.get("image")):
            fields["image"] = container["image"]
        resources = container.get("resources") or {}
        if isinstance(resources, Mapping):
            read = ("requests", "limits")
            ignored += [f"{at}.resources.{k}" for k, v in resources.items() if k not in read and _is_set(v)]
            kept = {k: _quantities(resources[k]) for k in read if _is_set(resources.get(k))}
            if kept:
                fields["resources"] = kept
        if _is_set(container.get("env")):
            fields["env"] = container["env"]
    return fields, ignored


def _is_set(value: object) -> bool:
    return value is not None and value != [] and value != {}


def _kube_form(value: Any) -> Any:
    """A pod (part) in Kubernetes' camelCase without unset (None) fields: `V1Pod.to_dict()` gives Python's
    snake_case names; keys of label-like maps and of requests/limits are kept as they are."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            name = _KUBE_KEY.sub(lambda m: m.group(1).upper(), str(key))
            verbatim = name in _VERBATIM_MAPS and isinstance(item, Mapping)
            kept = {str(k): v for k, v in item.items() if v is not None} if verbatim else None
            out[name] = kept if verbatim else _kube_form(item)
        return out
    if isinstance(value, list | tuple):
        return [_kube_form(item) for item in value]
    return value


def _quantities(value: Any) -> Any:
    """requests/limits with float quantities written as strings (a TaskSpec quantity is an int or a str)."""
    if not isinstance(value, Mapping):
        return value
    return {k: str(v) if isinstance(v, float) else v for k, v in value.items()}
