"""Where a task's XComs go: its ConfigMap through the API server, or a directory in local runs.

The same place keeps the task instance's state (``state_store``) under ``store.STATE_KEY``, which outlives
the XCom write of every attempt: ``read_state`` gives what earlier attempts left, ``write_state`` replaces
it at once (``None``: no state).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kdag_runner import keys, store

if TYPE_CHECKING:
    from kdag_runner.environment import TaskEnvironment
    from kdag_runner.kube import KubeClient


class SinkError(Exception):
    """The XComs could not be written; the task fails with exit code 3."""


class XComSink(Protocol):
    def write(self, data: Mapping[str, str]) -> None:
        """Replace the task's whole XCom store with ``data`` (ConfigMap data, ``.types`` included)."""


def _read_state(folder: Path) -> str | None:
    """The ``.state`` file in ``folder`` (a sink's directory, or the pod's view of its ConfigMap)."""
    try:
        return (folder / store.STATE_KEY).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise SinkError(f"cannot read the task state in {folder}: {err}") from None


class DirectorySink:
    """Writes the files a ConfigMap volume would show (``{key}`` and ``.types``) into ``path``.

    The new files are written into a sibling directory that then takes the place of ``path``, so
    readers see the old store or the new one, never a mix, and keys of an earlier attempt vanish. The task
    state (``.state``) is carried over, as the ConfigMap keeps it through an attempt's XCom apply.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, data: Mapping[str, str]) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.new-", dir=parent))
            for key, value in data.items():
                (staging / key).write_text(value, encoding="utf-8")
            state = self.read_state()
            if state is not None:
                (staging / store.STATE_KEY).write_text(state, encoding="utf-8")
            staging.chmod(0o755)
            if self.path.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=parent))
                os.replace(self.path, retired / "store")
                os.replace(staging, self.path)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(staging, self.path)
        except OSError as err:
            raise SinkError(f"cannot write XComs to {self.path}: {err}") from None

    def read_state(self) -> str | None:
        """The task state earlier attempts left (``.state``), None when there is none."""
        return _read_state(self.path)

    def write_state(self, text: str | None) -> None:
        """Replace the task state file at once (a rename, so a reader never sees half of it)."""
        target = self.path / store.STATE_KEY
        try:
            if text is None:
                target.unlink(missing_ok=True)
                return
            self.path.mkdir(parents=True, exist_ok=True)
            fd, staging = tempfile.mkstemp(prefix=f"{store.STATE_KEY}.new-", dir=self.path)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(staging, 0o644)
            os.replace(staging, target)
        except OSError as err:
            raise SinkError(f"cannot write the task state to {self.path}: {err}") from None


class ConfigMapSink:
    """Applies the task's ConfigMap (owned by the DAGRun, labelled like everything kdag makes)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        owner: Mapping[str, Any] | None,
        state_in: Path | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.labels = dict(labels)
        self.owner = dict(owner) if owner is not None else None
        self.state_in = state_in
        """Where this pod sees its own ConfigMap's ``.state`` (``KDAG_STATE_IN``, mounted by the kubelet for
        attempts after the first); None: no earlier attempt, no state."""

    def write(self, data: Mapping[str, str]) -> None:
        from kdag_runner.kube import KubeApiError

        try:
            self.client.apply_configmap(self.namespace, self.name, data, self.labels, self.owner)
        except KubeApiError as err:
            raise SinkError(f"cannot write XComs to ConfigMap {self.namespace}/{self.name}: {err}") from None
        except OSError as err:
            raise SinkError(f"cannot write XComs to ConfigMap {self.namespace}/{self.name}: {err}") from None

    def read_state(self) -> str | None:
        """The task state as the pod's own ConfigMap held it when the pod started (its volume)."""
        return None if self.state_in is None else _read_state(self.state_in)

    def write_state(self, text: str | None) -> None:
        """Apply ``.state`` alone under its own field manager (``None`` drops it); the XComs stay."""
        from kdag_runner.kube import STATE_FIELD_MANAGER, KubeApiError

        data = {} if text is None else {store.STATE_KEY: text}
        where = f"ConfigMap {self.namespace}/{self.name}"
        try:
            self.client.apply_configmap(
                self.namespace, self.name, data, self.labels, self.owner, field_manager=STATE_FIELD_MANAGER
            )
        except (KubeApiError, OSError) as err:
            raise SinkError(f"cannot write the task state to {where}: {err}") from None


LABEL_VALUE_MAX = 63


def label_value(value: str) -> str:
    """A label-value-safe form (design.md, "Names"): the value when it fits, else a cut plus a hash."""
    if len(value) <= LABEL_VALUE_MAX:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:5]
    return f"{value[: LABEL_VALUE_MAX - 6].rstrip('-_.')}-{digest}"


def store_labels(env: TaskEnvironment) -> dict[str, str]:
    """The labels of a task's XCom ConfigMap, as the controller labels its objects (design.md, "Names")."""
    return {
        keys.MANAGED_BY_LABEL: keys.MANAGED_BY,
        keys.DAG_LABEL: label_value(env.dag_name or env.dag_id),
        keys.DAGRUN_LABEL: label_value(env.run_id),
        keys.TASK_LABEL: label_value(env.task_id),
    }


def run_owner(env: TaskEnvironment) -> dict[str, Any]:
    """The ownerReference to the DAGRun, so its XComs go when the run is deleted."""
    return {"apiVersion": keys.API_VERSION, "kind": keys.DAGRUN_KIND, "name": env.run_id, "uid": env.run_uid}


def sink_from_env(
    env: TaskEnvironment, environ: Mapping[str, str] | None = None
) -> DirectorySink | ConfigMapSink:
    """``KDAG_XCOM_SINK=dir:PATH`` gives a directory sink; unset (or ``configmap``) the ConfigMap sink."""
    environ = os.environ if environ is None else environ
    spec = environ.get("KDAG_XCOM_SINK", "") or "configmap"
    if spec.startswith("dir:") and len(spec) > len("dir:"):
        return DirectorySink(Path(spec[len("dir:") :]))
    if spec != "configmap":
        raise SinkError(f"KDAG_XCOM_SINK must be 'dir:PATH' or 'configmap', got {spec!r}")
    for name, value in (
        ("KDAG_NAMESPACE", env.namespace),
        ("KDAG_XCOM_CONFIGMAP", env.xcom_configmap),
        ("KDAG_RUN_UID", env.run_uid),
    ):
        if not value:
            raise SinkError(f"{name} is not set; the ConfigMap sink needs it")
    from kdag_runner.kube import ClusterConfig, KubeApiError, KubeClient

    try:
        client = KubeClient(ClusterConfig.in_cluster(environ))
    except (KubeApiError, OSError) as err:
        raise SinkError(f"cannot set up the Kubernetes client: {err}") from None
    return ConfigMapSink(
        client, env.namespace, env.xcom_configmap, store_labels(env), run_owner(env), env.state_in
    )
