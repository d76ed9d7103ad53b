"""``BashOperator``: ``bash -c`` on the rendered command; the last line of output is its ``return_value``."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kdag_runner.airflow.exceptions import AirflowException, AirflowSkipException, DagDefinitionError
from kdag_runner.airflow.operators import BaseOperator
from kdag_runner.airflow.templating import airflow_context_vars
from kdag_runner.airflow.xcom_arg import XComArg


class BashOperator(BaseOperator):
    """Runs ``bash -c`` on the rendered command; the last line of output is its ``return_value``.

    A ``bash_command`` ending in ``.sh`` or ``.bash`` names a template file (``template_ext``), read from the
    DAG file's folder or the DAG's ``template_searchpath`` and rendered, as in Airflow (end the command with
    a space to run such a script as it is).
    """

    template_fields: Sequence[str] = ("bash_command", "env", "cwd")
    template_ext: Sequence[str] = (".sh", ".bash")

    def __init__(
        self,
        *,
        task_id: str,
        bash_command: str | XComArg,
        env: Mapping[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | Sequence[int] | None = 99,
        cwd: str | None = None,
        output_processor: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        command_text = isinstance(bash_command, str) and bool(bash_command.strip())
        if not command_text and not isinstance(bash_command, XComArg):
            raise DagDefinitionError(f"task '{task_id}': bash_command must be a non-empty string")
        if env is not None and not isinstance(env, Mapping):
            raise DagDefinitionError(f"task '{task_id}': env must be a dict, got {type(env).__name__}")
        super().__init__(task_id=task_id, **kwargs)
        self.bash_command: Any = bash_command
        self.env: dict[str, str] | None = dict(env) if env is not None else None
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_on_exit_code is None:
            self.skip_on_exit_code: list[int] = []
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = [skip_on_exit_code]
        else:
            self.skip_on_exit_code = list(skip_on_exit_code)
        self.cwd = cwd
        if output_processor is not None and not callable(output_processor):
            raise DagDefinitionError(f"task '{task_id}': output_processor must be callable")
        # Airflow's output_processor: what the task returns (and pushes) is output_processor(last line).
        self.output_processor: Callable[[str], Any] | None = output_processor

    def execute(self, context: dict[str, Any]) -> Any:
        # The runner rendered the template fields before execute; a direct call renders them here.
        self.render_template_fields_once(context)
        command = str(self.bash_command)
        cwd = self.cwd or None
        if cwd is not None:
            if not os.path.exists(cwd):
                raise AirflowException(f"Can not find the cwd: {cwd}")
            if not os.path.isdir(cwd):
                raise AirflowException(f"The cwd {cwd} must be a directory")
        env = self._environment(context)
        with tempfile.TemporaryDirectory(prefix="kdag-bash-") as scratch:
            exit_code, last_line = self._run(command, env, cwd or scratch)
        if exit_code in self.skip_on_exit_code:
            raise AirflowSkipException(f"Bash command returned exit code {exit_code}. Skipping.")
        if exit_code != 0:
            raise AirflowException(
                f"Bash command failed. The command returned a non-zero exit code {exit_code}."
            )
        return last_line if self.output_processor is None else self.output_processor(last_line)

    def _environment(self, context: Mapping[str, Any]) -> dict[str, str]:
        if self.env is None:
            env = dict(os.environ)
        else:
            env = {str(k): str(v) for k, v in self.env.items()}
            if self.append_env:
                env = {**os.environ, **env}
        env.update(airflow_context_vars(context))
        return env

    def _run(self, command: str, env: dict[str, str], cwd: str) -> tuple[int, str]:
        """Run bash with stderr merged into stdout, echoing each line; return exit code and last line."""
        process = subprocess.Popen(
            ["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        last_line = ""
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            last_line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip()
            print(last_line, flush=True)
        return process.wait(), last_line
