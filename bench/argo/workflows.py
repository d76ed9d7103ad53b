"""Argo Workflows manifests for the benchmark shapes, as plain dicts (pure functions, no cluster, no I/O).

The same shapes as `bench/controller_chain.py` builds for kdag, for the Argo fixture of this directory
(`bench/argo/install`, `bench/argo/start`): Workflows in the namespace `kdag-bench`, pods run as the
ServiceAccount `argo-workflow`, tasks in the local runner image (it has python3; never pulled).

    chain(n)              n Python tasks in a line; each reads the value its upstream wrote to an output
                          parameter (an input parameter) and writes it on; the last prints it
    fan(n)                a root, n parallel tasks each given the root's value, a join given all n values
    chain(n, kwok=True)   the same graphs on KWOK fake nodes (nodeSelector type=kwok, the fake-node taint
    fan(n, kwok=True)     tolerated); fake pods run nothing, so these pass no parameters: dependencies only

Every Workflow deletes its pods when it finishes (podGC) and is deleted itself `ttl_seconds` after
(ttlStrategy), so nothing is left behind. Submit with `kubectl create -f` (the names are generateName).
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "kdag-bench"
SERVICE_ACCOUNT = "argo-workflow"
RUNNER_IMAGE = "localhost/kdag-runner:dev"
KWOK_NODE_SELECTOR = {"type": "kwok"}
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}
LABELS = {"app.kubernetes.io/part-of": "kdag-bench"}
# Where a task writes its output parameter (the image's /tmp is writable by its user, 65532).
VALUE_PATH = "/tmp/value"

# A chain or fan task: prints what it got and writes it on, with its suffix appended.
STEP_SCRIPT = """\
import pathlib, sys
value = sys.argv[1] + sys.argv[2]
print(f"got {sys.argv[1]!r}, writing {value!r}")
pathlib.Path(sys.argv[3]).write_text(value)
"""
# The join of a fan: prints the n values it got (a JSON list) and writes them on, sorted and comma-joined.
JOIN_SCRIPT = """\
import json, pathlib, sys
values = json.loads(sys.argv[1])
print(f"joined {len(values)} values: {values}")
pathlib.Path(sys.argv[2]).write_text(",".join(sorted(values)))
"""
# A task on a fake node: kwok never runs it, but the pod spec still needs a command.
NOOP_COMMAND = ["python3", "-c", "pass"]


def chain(
    n: int,
    *,
    value: str = "kdag-bench",
    kwok: bool = False,
    image: str = RUNNER_IMAGE,
    generate_name: str = "argo-chain-",
    ttl_seconds: int = 300,
    pod_gc: str = "OnWorkflowCompletion",
) -> dict[str, Any]:
    """n tasks t0 -> t1 -> ... -> t{n-1}; t0 writes `value`, each later task gets it as an input parameter.

    Every task writes on what it got with its suffix `>i` appended, so the last task's output parameter is
    `value>1>2...>{n-1}`: proof that each handoff happened, in order.
    """
    if n < 1:
        raise ValueError(f"a chain needs at least 1 task, not {n}")
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        task: dict[str, Any] = {"name": f"t{i}", "template": "noop" if kwok else "step"}
        if i:
            task["depends"] = f"t{i - 1}"
        if not kwok:
            upstream = value if i == 0 else f"{{{{tasks.t{i - 1}.outputs.parameters.value}}}}"
            task["arguments"] = {
                "parameters": [
                    {"name": "value", "value": upstream},
                    {"name": "suffix", "value": f">{i}" if i else ""},
                ]
            }
        tasks.append(task)
    templates = [_dag(tasks), _noop_template(image) if kwok else _step_template(image)]
    return _workflow(generate_name, templates, kwok=kwok, ttl_seconds=ttl_seconds, pod_gc=pod_gc)


def fan(
    n: int,
    *,
    value: str = "kdag-bench",
    kwok: bool = False,
    image: str = RUNNER_IMAGE,
    generate_name: str = "argo-fan-",
    ttl_seconds: int = 300,
    pod_gc: str = "OnWorkflowCompletion",
) -> dict[str, Any]:
    """root -> w0..w{n-1} (in parallel) -> join: n + 2 pods.

    The root writes `value`; worker i gets it and writes `value-i`; the join gets all n workers' values in
    one input parameter (a JSON list that Argo fills in from each worker's output parameter) and writes them
    sorted and comma-joined. With `kwok`, the join only depends on the workers.
    """
    if n < 1:
        raise ValueError(f"a fan needs at least 1 parallel task, not {n}")
    template = "noop" if kwok else "step"
    root: dict[str, Any] = {"name": "root", "template": template}
    workers: list[dict[str, Any]] = [
        {"name": f"w{i}", "template": template, "depends": "root"} for i in range(n)
    ]
    join: dict[str, Any] = {
        "name": "join",
        "template": "noop" if kwok else "join",
        "depends": " && ".join(f"w{i}" for i in range(n)),
    }
    templates: list[dict[str, Any]]
    if kwok:
        templates = [_dag([root, *workers, join]), _noop_template(image)]
    else:
        root["arguments"] = {
            "parameters": [{"name": "value", "value": value}, {"name": "suffix", "value": ""}]
        }
        for i, worker in enumerate(workers):
            worker["arguments"] = {
                "parameters": [
                    {"name": "value", "value": "{{tasks.root.outputs.parameters.value}}"},
                    {"name": "suffix", "value": f"-{i}"},
                ]
            }
        values = json.dumps([f"{{{{tasks.w{i}.outputs.parameters.value}}}}" for i in range(n)])
        join["arguments"] = {"parameters": [{"name": "values", "value": values}]}
        templates = [_dag([root, *workers, join]), _step_template(image), _join_template(image)]
    return _workflow(generate_name, templates, kwok=kwok, ttl_seconds=ttl_seconds, pod_gc=pod_gc)


def expected_chain_value(n: int, value: str = "kdag-bench") -> str:
    """What the last task of `chain(n, value=value)` writes."""
    return value + "".join(f">{i}" for i in range(1, n))


def expected_fan_value(n: int, value: str = "kdag-bench") -> str:
    """What the join of `fan(n, value=value)` writes."""
    return ",".join(sorted(f"{value}-{i}" for i in range(n)))


def layers(
    n: int,
    *,
    width: int = 50,
    fan_in: int = 8,
    image: str = RUNNER_IMAGE,
    generate_name: str = "argo-layers-",
    ttl_seconds: int = 300,
    pod_gc: str = "OnWorkflowCompletion",
) -> dict[str, Any]:
    """n tasks t0..t{n-1} in layers of `width` on KWOK's fake nodes, each after up to `fan_in` tasks of the
    layer before (t{i} of layer L after t{(L-1)*width + (place+k) % width}, k < fan_in): the shape of
    bench/scale.layers_dag, so the two systems run the same DAG."""
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        layer, place = divmod(i, width)
        task: dict[str, Any] = {"name": f"t{i}", "template": "noop"}
        if layer:
            before = sorted({(layer - 1) * width + (place + k) % width for k in range(fan_in)})
            task["depends"] = " && ".join(f"t{j}" for j in before)
        tasks.append(task)
    templates = [_dag(tasks), _noop_template(image)]
    return _workflow(generate_name, templates, kwok=True, ttl_seconds=ttl_seconds, pod_gc=pod_gc)


def kwok_placement(spec: dict[str, Any]) -> dict[str, Any]:
    """A Workflow spec whose pods all go to KWOK fake nodes: their label, their taint tolerated."""
    return {**spec, "nodeSelector": dict(KWOK_NODE_SELECTOR), "tolerations": [dict(KWOK_TOLERATION)]}


def _workflow(
    generate_name: str, templates: list[dict[str, Any]], *, kwok: bool, ttl_seconds: int, pod_gc: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entrypoint": "main",
        "serviceAccountName": SERVICE_ACCOUNT,
        "templates": templates,
        # Pods go when the workflow (or each pod) finishes, the Workflow itself ttl_seconds after it finished.
        "podGC": {"strategy": pod_gc},
        "ttlStrategy": {"secondsAfterCompletion": ttl_seconds},
    }
    if kwok:
        spec = kwok_placement(spec)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": generate_name, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": spec,
    }


def _dag(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "main", "dag": {"tasks": tasks}}


def _step_template(image: str) -> dict[str, Any]:
    return {
        "name": "step",
        "inputs": {"parameters": [{"name": "value"}, {"name": "suffix"}]},
        "outputs": {"parameters": [{"name": "value", "valueFrom": {"path": VALUE_PATH}}]},
        "container": {
            "image": image,
            "imagePullPolicy": "Never",
            "command": [
                "python3",
                "-c",
                STEP_SCRIPT,
                "{{inputs.parameters.value}}",
                "{{inputs.parameters.suffix}}",
                VALUE_PATH,
            ],
        },
    }


def _join_template(image: str) -> dict[str, Any]:
    return {
        "name": "join",
        "inputs": {"parameters": [{"name": "values"}]},
        "outputs": {"parameters": [{"name": "value", "valueFrom": {"path": VALUE_PATH}}]},
        "container": {
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["python3", "-c", JOIN_SCRIPT, "{{inputs.parameters.values}}", VALUE_PATH],
        },
    }


def _noop_template(image: str) -> dict[str, Any]:
    return {
        "name": "noop",
        "container": {"image": image, "imagePullPolicy": "Never", "command": NOOP_COMMAND},
    }


if __name__ == "__main__":
    # `python bench/argo/workflows.py chain 3 | kubectl create -f -`: one manifest as JSON.
    import sys

    shape, count = sys.argv[1], int(sys.argv[2])
    builders = {"chain": chain, "fan": fan}
    print(json.dumps(builders[shape](count, kwok="--kwok" in sys.argv[3:]), indent=2))
