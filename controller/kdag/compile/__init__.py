"""Turn a DAG file into what runs it: a `DAGSpec`, and the manifests `kubectl apply` takes.

A Python DAG becomes a ConfigMap `{dag}-source-{hash}` holding the file (named by its content, immutable)
and a DAG whose tasks run the file's own operators (`python: {fromDagFile: true}`), so the pods execute
exactly the code the author wrote, and a run exactly the version its DAG spec named.
A YAML file is read as the DAG manifest it already is. Either way the DAG manifest passes
`kdag.api.validation` (the webhook's own validator) before kdag prints or applies it.

This is the public surface; the work is done beside it: `dag_files` (a file -> `LoadedDag`), `python_dags`
(a Python DAG -> `DAGSpec`), `schedule_fields` (`schedule=` -> spec fields), `executor_config` (a task's
image, resources and env), `unhonoured` (the warnings), `manifest_files` (the manifests, as YAML and files),
`errors` (`DefinitionError`).
"""

from __future__ import annotations

from kdag.compile.dag_files import LoadedDag, dag_name, load, load_manifest, load_python
from kdag.compile.errors import DefinitionError
from kdag.compile.manifest_files import (
    dag_manifest,
    manifests_yaml,
    remove_replaced_sources,
    source_configmap,
    write_manifests,
)

__all__ = [
    "DefinitionError",
    "LoadedDag",
    "dag_manifest",
    "dag_name",
    "load",
    "load_manifest",
    "load_python",
    "manifests_yaml",
    "remove_replaced_sources",
    "source_configmap",
    "write_manifests",
]
