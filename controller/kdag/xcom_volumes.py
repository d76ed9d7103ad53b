"""How a task pod sees its ancestors' XComs: `/kdag/xcom/in/{task}/{key}` (a mapped ancestor's instance i at
`{task}/{i}/{key}`), each file one ConfigMap key (docs/design.md, "Delivery").

The controller knows which keys every finished ancestor pushed (its TaskRun's `status.xcomKeys`, `__context`
included), so the pod gets one projected volume whose items are exactly those keys, plus each source's
`.types`: a task that pushed nothing costs the pod nothing. Before, every ancestor was a ConfigMap volume and
a mount of its own: 128 mounted ancestors made a 33 kB pod spec (twice that with managedFields), which every
watch of pods carries and which the kubelet mounts one by one. Items must be listed, so when the ancestors
pushed more keys than `MAX_PROJECTED_ITEMS` the pod falls back to one whole-ConfigMap volume per ancestor,
whose keys the kubelet lists itself: the size of such a pod stays bounded by the number of ancestors.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kdag_runner.store import CONTEXT_KEY, TYPES_KEY

from kdag import names

XCOM_IN_DIR = "/kdag/xcom/in"
XCOM_IN_VOLUME = "xcom-in"
MAX_PROJECTED_ITEMS = 1024
"""The most items the one projected volume lists (about 60 bytes each in the pod)."""


def xcom_in_volumes(
    run_name: str,
    ancestor_ids: Sequence[str],
    pushed: Mapping[str, Collection[str]],
    mapped: Mapping[str, Sequence[Collection[str]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volumes and the (read-only) mounts that show `ancestor_ids`' XComs under `XCOM_IN_DIR`.

    `pushed`: the ConfigMap keys each plain task pushed; `mapped`: for each mapped task, the keys each of its
    instances pushed, by map index. An ancestor (or instance) that pushed nothing has no ConfigMap worth
    reading and is left out; with nothing to show, the pod has no XCom volume at all (readers find no
    directory, as for an ancestor that pushed nothing). Every source is optional: a ConfigMap deleted
    meanwhile leaves files out instead of failing the pod."""
    folders: list[tuple[str, str, list[str]]] = []  # (ConfigMap, folder under XCOM_IN_DIR, keys)
    for tid in ancestor_ids:
        if tid in mapped:
            for index, keys in enumerate(mapped[tid]):
                if keys:
                    config_map = names.xcom_configmap_name(run_name, tid, index)
                    folders.append((config_map, f"{tid}/{index}", _items(keys)))
        elif pushed.get(tid):
            folders.append((names.xcom_configmap_name(run_name, tid), tid, _items(pushed[tid])))
    if not folders:
        return [], []
    if sum(len(keys) for _, _, keys in folders) > MAX_PROJECTED_ITEMS:
        return _volume_per_ancestor(run_name, ancestor_ids, mapped)
    sources = [_source(config_map, folder, keys) for config_map, folder, keys in folders]
    volume = {"name": XCOM_IN_VOLUME, "projected": {"sources": sources}}
    return [volume], [{"name": XCOM_IN_VOLUME, "mountPath": XCOM_IN_DIR, "readOnly": True}]


def _source(config_map: str, folder: str, keys: Sequence[str]) -> dict[str, Any]:
    """A projected volume's source: `keys` of one XCom ConfigMap at `{folder}/{key}`; optional."""
    items = [{"key": key, "path": f"{folder}/{key}"} for key in keys]
    return {"configMap": {"name": config_map, "optional": True, "items": items}}


def _items(keys: Collection[str]) -> list[str]:
    """A source's ConfigMap keys: the ones pushed, then `.types` (how to read them) and `__context` (which a
    runner older than `status.xcomKeys` listing it may have written without saying so)."""
    return list(dict.fromkeys([*sorted(keys), TYPES_KEY, CONTEXT_KEY]))


def _volume_per_ancestor(
    run_name: str, ancestor_ids: Sequence[str], mapped: Mapping[str, Sequence[Collection[str]]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The layout for ancestors that pushed too many keys to list: one volume and mount per ancestor, a plain
    one's whole ConfigMap (the kubelet lists its keys), a mapped one's instances projected into `{i}/`."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for i, tid in enumerate(ancestor_ids):
        name = f"{XCOM_IN_VOLUME}-{i}"
        if tid in mapped:
            if not mapped[tid]:
                continue  # expanded into no instance: nothing to read
            sources = [
                _source(names.xcom_configmap_name(run_name, tid, index), str(index), _items(keys))
                for index, keys in enumerate(mapped[tid])
            ]
            volume: dict[str, Any] = {"name": name, "projected": {"sources": sources}}
        else:
            config_map = names.xcom_configmap_name(run_name, tid)
            volume = {"name": name, "configMap": {"name": config_map, "optional": True}}
        volumes.append(volume)
        mounts.append({"name": name, "mountPath": f"{XCOM_IN_DIR}/{tid}", "readOnly": True})
    return volumes, mounts
