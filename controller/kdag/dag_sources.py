"""What a compiled Python DAG ships to its pods: the DAG file and the files beside it that it needs; and
which shipped versions are no longer needed.

Airflow runs a DAG file inside its DAGs folder, so the file may import helper modules that sit beside it
and its operators may read template files (`template_ext`, `template_searchpath`) from there. A task pod
mounts the DAG's source ConfigMap as that folder (`/kdag/dag/`), so `kdag compile` puts those files in
it as well: the modules the DAG file imported from its own folder, and the files of its folder whose
extension one of its tasks templates. Only files directly in the folder travel (a ConfigMap key cannot
hold a `/`); the ConfigMap must fit in etcd's object limit.

Each version is its own immutable ConfigMap, `{dag}-source-{hash}` (`names.source_configmap_name`), named
by the DAG spec's `pythonFile`, so a run (which keeps the spec it started with) reads one version from
start to end. `kdag apply` deletes the versions no run under way reads (`unused_versions`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kdag import names
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


def unused_versions(
    dag: str,
    current: str | None,
    configmaps: Iterable[Mapping[str, Any]],
    dagruns: Iterable[Mapping[str, Any]],
) -> list[str]:
    """The names of DAG `dag`'s source ConfigMaps that may go: every version but `current` (the one its spec
    names now) that no run under way reads (a run's DAG snapshot names the version its pods mount). None
    while a run of the DAG has no snapshot yet: its first pass may have read the DAG as it was before."""
    live = [
        run
        for run in dagruns
        if (run.get("status") or {}).get("phase") not in (RunPhase.SUCCEEDED, RunPhase.FAILED)
    ]
    read = set()
    for run in live:
        snapshot = (run.get("status") or {}).get("dag")
        if snapshot:
            read.add((snapshot.get("pythonFile") or {}).get("configMap"))
        elif ((run.get("spec") or {}).get("dagRef") or {}).get("name") == dag:
            return []
    return sorted(
        name
        for configmap in configmaps
        if (name := str(configmap["metadata"]["name"])) != current
        and names.is_source_configmap_of(dag, name)
        and name not in read
    )
