"""What a compiled Python DAG ships to its pods: the DAG file and the files beside it that it needs; and
which shipped versions are no longer needed.

Airflow runs a DAG file inside its DAGs folder, so the file may import helper modules that sit beside it
and its operators may read template files (`template_ext`, `template_searchpath`) from there. A task pod
mounts the DAG's source ConfigMap as that folder (`/kdag/dag/`), so `kdag compile` puts those files in
it as well: the modules the DAG file imported from its own folder, and the files of its folder whose
extension one of its tasks templates. Only files directly in the folder travel (a ConfigMap key cannot
hold a `/`); the ConfigMap must fit in etcd's object limit.

Each version is its own immutable ConfigMap, `{dag}-source-{hash}` (`names.source_configmap_name`), named
by the DAG spec's `pythonFile`, so a run (which follows the DAGVersion of the spec it started with) reads
one version from start to end. `kdag apply` deletes the versions no run under way reads (`unused_versions`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kdag import dag_versions, names
from kdag.api.models import RunPhase

SOURCE_LIMIT_BYTES = 1_000_000
"""The most a source ConfigMap's data may hold (etcd refuses objects over 1.5 MiB)."""
_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")


class SourceError(ValueError):
    """The DAG's files cannot be shipped; the message names the file or the size."""


def imported_modules_beside(dag_file: Path) -> list[Path]:
    """Python files in the DAG file's folder that are loaded as modules now (the file's own imports)."""
    folder = dag_file.resolve().parent
    found: set[Path] = set()
    for module in list(sys.modules.values()):
        location = getattr(module, "__file__", None)
        if not isinstance(location, str):
            continue
        file = Path(location).resolve()
        if file.parent == folder and file.suffix == ".py" and file != dag_file.resolve():
            found.add(file)
    return sorted(found)


def template_files_beside(dag_file: Path, extensions: Iterable[str]) -> list[Path]:
    """Files directly in the DAG file's folder whose name ends in one of the templated extensions."""
    suffixes = tuple(ext for ext in extensions if ext)
    if not suffixes:
        return []
    folder = dag_file.resolve().parent
    return sorted(
        file
        for file in folder.iterdir()
        if file.is_file() and file.name.endswith(suffixes) and file != dag_file.resolve()
    )


def source_data(dag_file: Path, key: str, companions: Iterable[Path]) -> dict[str, str]:
    """The source ConfigMap's data: the DAG file under `key`, each companion under its file name."""
    data = {key: dag_file.read_text(encoding="utf-8")}
    for file in companions:
        if not _CONFIGMAP_KEY.fullmatch(file.name):
            raise SourceError(f"'{file}': a file name kdag can ship must match [-._a-zA-Z0-9]+")
        if file.name in data:
            continue
        try:
            data[file.name] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SourceError(f"'{file}': only text files can be shipped beside a DAG file") from None
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > SOURCE_LIMIT_BYTES:
        largest = sorted(data, key=lambda k: len(data[k].encode()), reverse=True)[:3]
        raise SourceError(
            f"the DAG file and the files beside it take {size} bytes; at most {SOURCE_LIMIT_BYTES} fit in "
            f"one ConfigMap (largest: {', '.join(largest)}); move large data out of the DAG's folder"
        )
    return data


def _live(dagruns: Iterable[Mapping[str, Any]], dag: str) -> list[Mapping[str, Any]]:
    """The runs of DAG `dag` under way (not finished)."""
    return [
        run
        for run in dagruns
        if ((run.get("spec") or {}).get("dagRef") or {}).get("name") == dag
        and (run.get("status") or {}).get("phase") not in (RunPhase.SUCCEEDED, RunPhase.FAILED)
    ]


def versions_read(dag: str, dagruns: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of the DAGVersions that DAG `dag`'s runs under way follow: the ones `unused_versions`
    needs (each names the source ConfigMap its runs' pods mount)."""
    return sorted({str(name) for run in _live(dagruns, dag) if (name := dag_versions.run_version(run))})


def unused_versions(
    dag: str,
    current: str | None,
    configmaps: Iterable[Mapping[str, Any]],
    dagruns: Iterable[Mapping[str, Any]],
    versions: Iterable[Mapping[str, Any]] = (),
) -> list[str]:
    """The names of DAG `dag`'s source ConfigMaps that may go: every version but `current` (the one its spec
    names now) that no run of the DAG under way reads (the DAGVersion a run follows names the source its
    pods mount; `versions` are those DAGVersion objects, `versions_read` names them). None while a run of
    the DAG has not started yet (its first pass may read the DAG as it was before), or follows a DAGVersion
    that is not among `versions` (what it reads is not known)."""
    by_name = {str((v.get("metadata") or {}).get("name")): v for v in versions}
    read = set()
    for run in _live(dagruns, dag):
        version = by_name.get(dag_versions.run_version(run) or "")
        if version is None:
            return []
        python_file = ((version.get("spec") or {}).get("dag") or {}).get("pythonFile") or {}
        read.add(python_file.get("configMap"))
    return sorted(
        name
        for configmap in configmaps
        if (name := str(configmap["metadata"]["name"])) != current
        and names.is_source_configmap_of(dag, name)
        and name not in read
    )
