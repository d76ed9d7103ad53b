"""Controller settings from the environment."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

import pytest
from kdag.settings import DEFAULT_RUNNER_IMAGE, ControllerSettings


def test_defaults() -> None:
    settings = ControllerSettings.from_env({})
    assert settings == ControllerSettings()
    assert settings.runner_image == DEFAULT_RUNNER_IMAGE == "ghcr.io/kdag-dev/kdag-runner:0.1.0"
    assert settings.task_service_account == "kdag-task"
    assert settings.namespaces == ()


def test_environment_overrides() -> None:
    settings = ControllerSettings.from_env(
        {
            "KDAG_RUNNER_IMAGE": "localhost/kdag-runner:dev",
            "KDAG_NAMESPACES": "a, b,,",
            "KDAG_WEBHOOK_PORT": "0",
            "KDAG_IMAGE_PULL_POLICY": "Never",
            "KDAG_PEERING": "",
            "UNRELATED": "x",
        }
    )
    assert settings.runner_image == "localhost/kdag-runner:dev"
    assert settings.namespaces == ("a", "b")
    assert settings.webhook_port == 0
    assert settings.image_pull_policy == "Never"
    assert settings.peering is None


def test_metrics_stay_on_loopback_and_the_task_cluster_role_is_kdag_task_unless_told() -> None:
    """The host-run controller serves metrics on 127.0.0.1 and binds the ClusterRole deploy/ makes; the chart
    sets both (KDAG_METRICS_HOST=0.0.0.0 behind its NetworkPolicy, its release's task ClusterRole)."""
    default = ControllerSettings.from_env({})
    assert (default.metrics_host, default.task_cluster_role) == ("127.0.0.1", "kdag-task")
    told = ControllerSettings.from_env({"KDAG_METRICS_HOST": "0.0.0.0", "KDAG_TASK_CLUSTER_ROLE": "data"})
    assert (told.metrics_host, told.task_cluster_role) == ("0.0.0.0", "data")


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="KDAG_METRICS_PORT must be an integer, got 'eighty'"):
        ControllerSettings.from_env({"KDAG_METRICS_PORT": "eighty"})


def test_every_field_is_documented() -> None:
    (cls,) = ast.parse(textwrap.dedent(inspect.getsource(ControllerSettings))).body
    assert isinstance(cls, ast.ClassDef)
    documented = {
        statement.target.id
        for statement, following in zip(cls.body, cls.body[1:], strict=False)
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    }
    assert {field.name for field in dataclasses.fields(ControllerSettings)} == documented


@pytest.mark.parametrize(
    ("env", "chunk", "idle"),
    [({}, 200, 0.5), ({"KDAG_LIST_CHUNK_SIZE": "0", "KDAG_EVENT_WORKER_IDLE_MS": "5000"}, None, 5.0)],
)
def test_kopf_lists_in_pages_and_lets_idle_workers_go(
    env: dict[str, str], chunk: int | None, idle: float
) -> None:
    """10,000 TaskRuns listed as one answer, and a worker kept 5 s per object, cost the controller 1 GiB
    (bench/controller_memory.py); the defaults page and let workers go."""
    import kopf
    from kdag.controller import ProcessOptions, _configure

    settings = ControllerSettings.from_env({"KDAG_WEBHOOK_PORT": "0", **env})
    kopf_settings = kopf.OperatorSettings()
    _configure(settings, ProcessOptions(), kopf_settings)
    assert kopf_settings.watching.chunk_size == chunk
    assert kopf_settings.queueing.idle_timeout == idle
