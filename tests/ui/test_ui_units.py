"""The UI's pure parts: layout, drawing (escaped), Gantt bars, rows (XComs, tasks, inputs), the trigger form,
error pages; and its pages served from a fake client, where `<script>` in a task id, an XCom value and a log
must come out as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kdag.api.models import DAGSpec
from kdag.kube import DAG, DAGRUN, POD, TASKRUN
from kdag.ui import drawing, layout, rows, stream, timeline, trigger_form
from kdag.ui.cache import Store
from kdag.ui.context import PageError, UiSettings, UiState
from kdag.ui.server import build_app, error_status, host_allowed
from kdag_runner.kube import Forbidden, NotFound
from ui_fixtures import (
    DAG_NAME,
    EVIL,
    EVIL_TASK,
    NS,
    RUN,
    FakeApi,
    dag,
    dagrun,
    pod,
    taskrun,
    types,
    xcom_configmap,
)

NOW = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def spec_of(*tasks: tuple[str, list[str]], **fields: Any) -> DAGSpec:
    return DAGSpec.model_validate(
        {"tasks": [{"id": tid, "command": ["true"], "upstream": ups} for tid, ups in tasks], **fields}
    )


def test_layers_put_every_task_right_of_its_upstream_tasks() -> None:
    spec = spec_of(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]), ("e", []))
    drawn = layout.layout(spec.tasks)
    assert layout.layers(spec.tasks) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    for up, down in drawn.edges:
        assert drawn.boxes[up].x < drawn.boxes[down].x
    assert sorted(drawn.edges) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    ys = {drawn.boxes[t].y for t in ("b", "c")}
    assert len(ys) == 2  # two boxes of one layer never overlap
    assert drawn.width >= 3 * layout.NODE_WIDTH and drawn.height > 0


def test_barycentre_keeps_children_beside_their_parent() -> None:
    spec = spec_of(("p1", []), ("p2", []), ("c2", ["p2"]), ("c1", ["p1"]))
    drawn = layout.layout(spec.tasks)
    assert drawn.boxes["c1"].y < drawn.boxes["c2"].y  # c1 follows p1, which is above p2


def test_a_thousand_tasks_lay_out_quickly() -> None:
    import time

    tasks = (
        [("root", [])] + [(f"t{i}", ["root"]) for i in range(998)] + [("join", [f"t{i}" for i in range(998)])]
    )
    spec = spec_of(*tasks)
    started = time.perf_counter()
    drawn = layout.layout(spec.tasks)
    assert time.perf_counter() - started < 1.0
    assert len(drawn.boxes) == 1000


def test_graph_svg_escapes_task_ids_and_marks_phases() -> None:
    spec = spec_of(("a", []))
    drawn = layout.Layout({EVIL_TASK: layout.Box(0, 0, 0)}, [], 200, 50)
    svg = str(drawing.graph_svg(drawn, {EVIL_TASK: "Failed"}, lambda tid: f"/t/{tid}"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="node st-Failed"' in svg
    ok = str(drawing.graph_svg(layout.layout(spec.tasks), {"a": "Succeeded"}))
    assert 'data-task="a"' in ok and "st-Succeeded" in ok


def test_gantt_splits_each_attempt_into_queued_and_running() -> None:
    chart = timeline.gantt(
        [("hello_task", None, [pod("hello_task")]), ("bad", None, [pod("bad", exit_code=3)])], NOW
    )
    assert [bar.label for bar in chart.bars] == ["bad #1", "hello_task #1"] or len(chart.bars) == 2
    bar = next(b for b in chart.bars if b.task_id == "hello_task")
    assert (bar.queued_from, bar.running_from, bar.until) == (0.0, 2.0, 7.0)
    running = timeline.gantt([("t", None, [pod("t", running=True)])], NOW)
    assert running.bars[0].until == 59.0 and running.bars[0].exit_code is None
    svg = str(drawing.gantt_svg(chart))
    assert "run-ok" in svg and "run-failed" in svg and "queued" in svg
    assert "No attempt" in str(drawing.gantt_svg(timeline.Gantt([], 0)))


def test_attempts_read_the_task_container() -> None:
    [attempt] = timeline.attempts([pod("t", exit_code=2)])
    assert (attempt.number, attempt.exit_code, attempt.reason, attempt.running) == (1, 2, "Error", False)
    assert timeline.attempts([pod("t", running=True)])[0].running


def test_xcom_rows_decode_types_sizes_and_mark_internal_keys() -> None:
    data = {
        "return_value": '["2026-01-01"]',
        "execution_time": "2026-01-01",
        "__context": '{"value":"v"}',
        "-value.20from.20pusher.201": "1",
        ".types": types(
            return_value="json",
            execution_time="str",
            __context="json",
            **{"-value.20from.20pusher.201": "json"},
        ),
    }
    found = {row.key: row for row in rows.xcom_rows(data, map_index=None)}
    assert found["return_value"].value == '["2026-01-01"]' and found["return_value"].type == "list"
    assert found["execution_time"].type == "str" and found["execution_time"].size == 10
    assert found["__context"].internal and not found["return_value"].internal
    assert found["value from pusher 1"].type == "int"
    assert ".types" not in found


def test_long_xcom_values_are_cut_and_long_json_indented() -> None:
    [row] = rows.xcom_rows({"k": json.dumps(list(range(40))), ".types": types(k="json")})
    assert row.value.startswith("[\n  0,")
    [row] = rows.xcom_rows({"k": "x" * (rows.PRETTY_LIMIT + 5)})
    assert row.value.endswith("(5 more characters not shown)")


def test_task_rows_follow_the_topological_order_with_mapped_instances() -> None:
    mapped = taskrun("m", "Succeeded")
    mapped["spec"]["mapIndex"] = 1
    found = rows.task_rows(
        ["hello_task", "m", "later"],
        {"hello_task": "Succeeded", "m": "Running"},
        [taskrun("hello_task", "Succeeded"), mapped],
        NOW,
    )
    assert [(r.task_id, r.map_index, r.phase) for r in found] == [
        ("hello_task", None, "Succeeded"),
        ("m", None, "Running"),
        ("m", 1, "Succeeded"),
        ("later", None, "Pending"),
    ]
    assert found[0].duration == "8s" and found[0].exit_code == "0"


def test_paging_clamps_and_counts() -> None:
    items = list(range(250))
    assert rows.page_of(items, 3)[1:] == (3, 3) and len(rows.page_of(items, 3)[0]) == 50
    assert rows.page_of(items, 99)[1] == 3 and rows.page_of([], 1) == ([], 1, 1)


def test_received_inputs_name_env_and_files() -> None:
    task = {"xcomInputs": [{"env": "WHEN", "task": "hello_task", "key": "execution_time"}]}
    found = rows.received_inputs(task, pod("goodbye_task"))
    # From the one projected volume: each key pushed, .types and kdag's __context aside.
    assert [(i.task_id, i.key, i.delivered) for i in found] == [
        ("hello_task", "execution_time", "env WHEN"),
        ("hello_task", "execution_time", "file /kdag/xcom/in/hello_task/execution_time"),
        ("hello_task", "return_value", "file /kdag/xcom/in/hello_task/return_value"),
    ]
    # A pod whose ancestors pushed too many keys to list mounts each one's whole ConfigMap: every key, `*`.
    whole = pod("goodbye_task")
    whole["spec"]["volumes"] = [{"name": "xcom-in-0", "configMap": {"name": "x", "optional": True}}]
    whole["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "xcom-in-0", "mountPath": "/kdag/xcom/in/hello_task", "readOnly": True}
    ]
    assert [(i.task_id, i.key, i.delivered) for i in rows.received_inputs({}, whole)] == [
        ("hello_task", "*", "file /kdag/xcom/in/hello_task/")
    ]


def test_dag_row_and_grid() -> None:
    broken = dag()
    broken["status"]["conditions"][0].update(status="False", reason="InvalidDAG", message="cycle a -> a")
    runs = [dagrun({"hello_task": "Failed"}, "Failed"), dagrun({"hello_task": "Succeeded"}, "Succeeded")]
    row = rows.dag_row(broken, runs)
    assert row.problem == "InvalidDAG: cycle a -> a" and row.task_count == 2
    assert row.schedule == "None (triggered only)" and [p for _, p in row.last_runs] == [
        "Succeeded",
        "Failed",
    ]
    table = rows.grid(["hello_task", "goodbye_task"], runs)
    assert table.cells == [["Succeeded", "Failed"], ["", ""]]


def params_spec() -> DAGSpec:
    return spec_of(
        ("report", []),
        params={"count": 2, "mode": "fast", "tags": ["a"]},
        paramSchemas={
            "count": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["fast", "slow"]},
            "who": {"type": "string", "description": "Who runs it"},
        },
    )


def test_trigger_form_fields_follow_the_schemas() -> None:
    fields = {f.name: f for f in trigger_form.fields(params_spec())}
    assert fields["count"].widget == "text" and fields["count"].value == "2"
    assert fields["mode"].widget == "select" and fields["mode"].options == ["fast", "slow"]
    assert fields["tags"].widget == "json" and fields["tags"].value == '["a"]'
    assert fields["who"].required and fields["who"].description == "Who runs it"


def test_a_submitted_form_becomes_a_dagrun_or_problems() -> None:
    form = {
        "param.count": "5",
        "param.mode": "fast",
        "param.who": "ada",
        "conf": '{"x": 1}',
        "logical_date": "2026-02-03",
    }
    made = trigger_form.read_form("checked", "uid", params_spec(), form, run_name="checked-manual-x")
    assert made.problems == [] and made.manifest is not None
    assert made.manifest["spec"]["params"] == {"count": 5, "who": "ada"}  # mode left at its default: not sent
    assert made.manifest["spec"]["conf"] == {"x": 1}
    assert made.manifest["spec"]["logicalDate"] == "2026-02-03T00:00:00Z"
    assert made.manifest["metadata"]["ownerReferences"][0]["uid"] == "uid"
    bad = trigger_form.read_form("checked", "uid", params_spec(), {"param.count": "0"})
    assert bad.manifest is None
    assert any("spec.params.count" in p and "minimum" in p for p in bad.problems)
    assert any("who" in p and "no value" in p for p in bad.problems)
    assert trigger_form.read_form("c", "u", params_spec(), {"conf": "[1]", "param.who": "a"}).problems == [
        "conf: must be a JSON object, got list"
    ]


def test_errors_become_statuses_and_one_line() -> None:
    assert error_status(Forbidden(403, "nope"))[0] == 403
    assert error_status(NotFound(404, "gone"))[0] == 404
    assert error_status(PageError(422, "bad"))[0] == 422
    status, message = error_status(KeyError("secret detail"))
    assert status == 500 and "secret detail" not in message


def test_a_page_hears_only_what_it_wants() -> None:
    message = {"kind": "task", "ns": NS, "run": RUN, "dag": DAG_NAME}
    assert stream.Interest(NS, run=RUN).wants(message)
    assert not stream.Interest(NS, run="other").wants(message)
    assert stream.Interest(NS, dag=DAG_NAME).wants(message)
    assert not stream.Interest().wants(message)  # the DAG list hears runs only
    assert stream.Interest().wants({"kind": "run", "ns": NS})


async def test_a_slow_page_is_dropped_not_buffered_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "QUEUE_SIZE", 2)
    hub = stream.Hub()
    async with hub.subscribe(stream.Interest()) as subscriber:
        for _ in range(5):
            hub.publish({"kind": "run"})
        assert subscriber not in hub.subscribers
        items = [subscriber.queue.get_nowait() for _ in range(subscriber.queue.qsize())]
        assert items[-1] is None


def ui_with(
    objects: dict[tuple[str, str], dict[str, Any]],
    store_objects: list[tuple[Any, dict[str, Any]]],
    log: str = "",
    **settings: Any,
) -> tuple[UiState, FakeApi]:
    api = FakeApi(objects, log)
    store = Store([""])
    for kind, obj in store_objects:
        store.record(kind, "ADDED", obj)
    return UiState(UiSettings(**settings), api, store), api  # type: ignore[arg-type]


def seeded(**settings: Any) -> tuple[UiState, FakeApi]:
    run_phases = {"hello_task": "Succeeded", "goodbye_task": "Failed", EVIL_TASK: "Succeeded"}
    evil_tasks = [
        {"id": "hello_task", "command": ["true"]},
        {"id": "goodbye_task", "command": ["true"], "upstream": ["hello_task"]},
        {"id": EVIL_TASK, "command": ["true"]},
    ]
    cms = {
        ("ConfigMap", xcom_configmap("goodbye_task", {})["metadata"]["name"]): xcom_configmap(
            "goodbye_task", {"return_value": json.dumps([EVIL]), ".types": types(return_value="json")}
        ),
        ("ConfigMap", xcom_configmap("hello_task", {})["metadata"]["name"]): xcom_configmap(
            "hello_task",
            {
                "execution_time": "2026-01-01",
                "__context": "{}",
                ".types": types(execution_time="str", __context="json"),
            },
        ),
    }
    return ui_with(
        cms,
        [
            (DAG, dag(evil_tasks, params={"value": EVIL})),
            (DAGRUN, dagrun(run_phases, "Failed")),
            (TASKRUN, taskrun("hello_task", "Succeeded")),
            (TASKRUN, taskrun("goodbye_task", "Failed", exit_code=1, message=f"Traceback: {EVIL}")),
            (TASKRUN, taskrun(EVIL_TASK, "Succeeded")),
            (POD, pod("goodbye_task", exit_code=1)),
        ],
        log=f"starting\n{EVIL}\nTraceback (most recent call last)\n",
        **settings,
    )


async def client_for(ui: UiState) -> TestClient[Any, Any]:
    client = TestClient(TestServer(build_app(ui.settings, ui)))
    await client.start_server()
    return client


async def test_pages_render_user_text_as_text() -> None:
    ui, _ = seeded()
    client = await client_for(ui)
    try:
        for path in (
            "/",
            f"/dags/{NS}/{DAG_NAME}",
            f"/runs/{NS}/{RUN}",
            f"/runs/{NS}/{RUN}/tasks/goodbye_task",
        ):
            answer = await client.get(path)
            text = await answer.text()
            assert answer.status == 200, (path, text[-2000:])
            assert "<script>alert" not in text, path
            assert "Content-Security-Policy" in answer.headers
        run_page = await (await client.get(f"/runs/{NS}/{RUN}")).text()
        assert 'id="run-xcom-table"' in run_page and "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page
        assert "execution_time" in run_page  # hello_task's XComs, read because its TaskRun lists keys
        task_page = await (await client.get(f"/runs/{NS}/{RUN}/tasks/goodbye_task")).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in task_page  # the log and the XCom, escaped
        assert "Traceback (most recent call last)" in task_page and "exit code 1" in task_page
        hello = await (await client.get(f"/runs/{NS}/{RUN}/tasks/hello_task")).text()
        assert "internal" in hello and "__context" in hello
    finally:
        await client.close()


async def test_bad_requests_get_clear_pages() -> None:
    ui, _ = seeded()
    client = await client_for(ui)
    try:
        cases = [
            (f"/dags/{NS}/nope", 404, "DAG &#39;nope&#39; not found"),
            (f"/runs/{NS}/nope", 404, "not found"),
            (f"/runs/{NS}/{RUN}/tasks/nope", 404, "has no task"),
            (f"/runs/{NS}/{RUN}?page=x", 400, "not a number"),
            ("/nowhere", 404, "404"),
        ]
        for path, status, words in cases:
            answer = await client.get(path)
            text = await answer.text()
            assert answer.status == status and words in text and "Traceback" not in text, (path, text[-500:])
    finally:
        await client.close()


async def test_trigger_needs_the_token_and_same_origin_then_creates_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kdag.ui import pages

    monkeypatch.setattr(pages, "CREATED_WAIT_SECONDS", 0.1)  # the fake client's runs reach no watch
    ui, api = seeded()
    ui.store.record(DAG, "MODIFIED", dag(params={"count": 2}, paramSchemas={"count": {"type": "integer"}}))
    client = await client_for(ui)
    url = f"/dags/{NS}/{DAG_NAME}/runs"
    try:
        refused = await client.post(url, data={"param.count": "3"})
        assert refused.status == 403 and "token" in await refused.text()
        cross = await client.post(
            url, data={"csrf": ui.csrf_token}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status == 403 and "another origin" in await cross.text()
        bad = await client.post(url, data={"csrf": ui.csrf_token, "param.count": "many"})
        assert bad.status == 422 and "spec.params.count" in await bad.text() and not api.created
        made = await client.post(url, data={"csrf": ui.csrf_token, "param.count": "3"}, allow_redirects=False)
        assert made.status == 303 and made.headers["Location"].startswith(f"/runs/{NS}/{DAG_NAME}-manual-")
        assert api.created[0]["spec"]["params"] == {"count": 3}
        api.forbid_create = True
        forbidden = await client.post(url, data={"csrf": ui.csrf_token, "param.count": "4"})
        assert forbidden.status == 403 and "cannot create resource" in await forbidden.text()
    finally:
        await client.close()


async def test_read_only_has_no_form_and_refuses_posts() -> None:
    ui, api = seeded(read_only=True)
    client = await client_for(ui)
    try:
        page = await (await client.get(f"/dags/{NS}/{DAG_NAME}")).text()
        assert "trigger-form" not in page and "Triggering is disabled" in page
        answer = await client.post(f"/dags/{NS}/{DAG_NAME}/runs", data={"csrf": ui.csrf_token})
        assert answer.status == 403 and not api.created
    finally:
        await client.close()


def test_in_cluster_triggers_only_when_allowed() -> None:
    assert UiSettings().can_trigger
    assert not UiSettings(in_cluster=True).can_trigger
    assert UiSettings(in_cluster=True, allow_trigger=True).can_trigger
    assert not UiSettings(read_only=True).can_trigger


@pytest.mark.parametrize(
    ("bound_to", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8080", True),
        ("127.0.0.1", "localhost:8080", True),
        ("127.0.0.1", "LOCALHOST:8080", True),
        ("127.0.0.1", "localhost", True),  # no port
        ("127.0.0.1", "[::1]:8080", True),
        ("::1", "[::1]:8080", True),
        ("localhost", "127.0.0.1:8080", True),
        ("127.0.0.1", "evil.example:8080", False),
        ("127.0.0.1", "127.0.0.1.evil.example", False),
        ("127.0.0.1", "localhost.evil.example:8080", False),
        ("127.0.0.1", "[::1", False),
        ("127.0.0.1", "", False),
        ("127.0.0.2", "evil.example", False),  # any loopback address is guarded
        ("::1", "evil.example", False),
        # The chart's pod: reached by a port-forward, a Service name or an Ingress's name.
        ("0.0.0.0", "kdag.example.com", True),
        ("0.0.0.0", "kdag-ui.kdag-system.svc:8080", True),
        ("0.0.0.0", "", True),
    ],
)
def test_a_loopback_ui_answers_only_loopback_names(bound_to: str, host: str, allowed: bool) -> None:
    """DNS rebinding: another site's page must not read (or post to) the UI running as its user."""
    assert host_allowed(bound_to, host) is allowed


async def test_a_request_for_another_host_name_is_refused_saying_why_and_nothing_else() -> None:
    ui, api = seeded()
    ui.notices.append("showing namespace 'payroll'")
    client = await client_for(ui)
    try:
        answer = await client.get("/", headers={"Host": "rebound.example:8080"})
        text = await answer.text()
        assert answer.status == 403 and "answers only requests addressed to 127.0.0.1" in text
        assert answer.content_type == "text/plain" and "payroll" not in text and ui.csrf_token not in text
        posted = await client.post(
            f"/dags/{NS}/{DAG_NAME}/runs", data={"csrf": ui.csrf_token}, headers={"Host": "rebound.example"}
        )
        assert posted.status == 403 and not api.created
        assert (await client.get("/")).status == 200
    finally:
        await client.close()


def test_every_live_page_first_hears_the_state_now_so_a_change_before_its_stream_opened_is_not_lost() -> None:
    """A page renders, its run ends, then its EventSource connects (or reconnects after Chromium dropped it):
    without the state now it would wait for a change that already happened, stale until reloaded."""
    from kdag.ui.run_pages import page_snapshot
    from kdag.ui.stream import Interest

    ui, _ = seeded()
    run = [m for m in page_snapshot(ui, Interest(NS, run=RUN)) if m.get("kind") == "run"]
    assert [(m["name"], m["phase"]) for m in run] == [(RUN, "Failed")]
    on_dag_page = page_snapshot(ui, Interest(NS, dag=DAG_NAME))
    assert (RUN, "Failed") in [(m.get("name"), m.get("phase")) for m in on_dag_page]
    cells = {(m.get("run"), m.get("task"), m.get("phase")) for m in on_dag_page if m.get("kind") == "task"}
    assert (RUN, "goodbye_task", "Failed") in cells and (RUN, "hello_task", "Succeeded") in cells
    assert [(m["name"], m["phase"]) for m in page_snapshot(ui, Interest())] == [(RUN, "Failed")]
    assert page_snapshot(ui, Interest(NS, dag="no-such-dag")) == []
