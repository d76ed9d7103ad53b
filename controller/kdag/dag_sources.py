"""What a compiled Python DAG ships to its pods: the DAG file and the files beside it that it needs.

Airflow runs a DAG file inside its DAGs folder, so the file may import helper modules that sit beside it
and its operators may read template files (`template_ext`, `template_searchpath`) from there. A task pod
mounts the ConfigMap `{dag}-source` as that folder (`/kdag/dag/`), so `kdag compile` puts those files in
it as well: the modules the DAG file imported from its own folder, and the files of its folder whose
extension one of its tasks templates. Only files directly in the folder travel (a ConfigMap key cannot
hold a `/`); the ConfigMap must fit in etcd's object limit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

SOURCE_LIMIT_BYTES = 1_000_000
"""The most the `{dag}-source` ConfigMap's data may hold (etcd refuses objects over 1.5 MiB)."""
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
    """The `{dag}-source` ConfigMap data: the DAG file under `key`, each companion under its file name."""
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
