"""What the ``airflow.*`` import shim answers for: every Airflow import path DAG files use, and why a name
there is not supported. Data only; ``compat.py`` serves it.

``AIRFLOW_PATHS`` lists, per module path of Airflow 2.x, Airflow 3.x (``airflow.sdk``), the standard
provider (``airflow.providers.standard``) and ``airflow.providers.common.compat``, the names DAG files import
from it (taken from the example DAGs of Airflow 2.10 and 3.3 and of the standard provider, and from what
those modules export). A listed name is served when kdag implements it under any path (``compat.SHIM_MODULES``
or ``compat``'s own helpers); otherwise importing it fails while the DAG file loads, naming the name, the
file, the line and, from ``NOT_SUPPORTED``, the reason. A name kdag serves is served even while it is
still listed in ``NOT_SUPPORTED``: take it out of there when implementing it. Any ``airflow.*`` module not
listed here (nor in ``compat.SHIM_MODULES``) fails the same way.
"""

from __future__ import annotations

# -- why a name is not supported -------------------------------------------------------------------------

SENSORS = (
    "sensors (tasks that wait for a condition) other than BaseSensorOperator subclasses, PythonSensor, "
    "@task.sensor, TimeDeltaSensor and DateTimeSensor are not run by kdag: write the condition as a "
    "PythonSensor (mode='reschedule' holds no pod while it waits)"
)
DEFERRABLE = "triggers and deferrable operators need Airflow's triggerer"
ASSETS = (
    "assets and datasets (data-aware scheduling) need Airflow's scheduler and metadata database: schedule "
    "with a cron expression or timetable, or start runs with `kdag trigger`"
)
VIRTUALENV = (
    "virtualenv and external-Python operators are not run by kdag: give the task an image that has its "
    "packages (a DAG manifest's task `image`)"
)
HITL = "human-in-the-loop operators need Airflow's UI and API server"
EMAIL = "e-mail needs Airflow's SMTP connection; send it from a PythonOperator"
SUBDAG = "SubDagOperator was removed in Airflow 3: use a TaskGroup"
METADATA = (
    "Variables, Connections, hooks and XCom backends live in Airflow's metadata database: pass "
    "configuration as params, environment variables or Kubernetes Secrets"
)
PLUGINS = "plugins, listeners, notifiers and priority-weight strategies extend Airflow's own processes"
CONFIGURATION = "Airflow's configuration (airflow.cfg) does not exist under kdag"
OBJECT_STORAGE = "ObjectStoragePath (Airflow's fsspec object storage): use the storage client in the task"
RETRY_POLICY = "retry policies: kdag retries by retries, retry_delay and retry_exponential_backoff"
CUSTOM_TIMETABLE = (
    "custom timetables need Airflow's scheduler: kdag runs cron expressions, timedeltas and Airflow's "
    "built-in timetables"
)
SQL = "SQL operators need Airflow's connections"
RUNTIME = "Airflow's runtime objects (DagRun rows, mapped operators, ...) exist only inside Airflow"
RESUMABLE_JOB = (
    "ResumableJobMixin is not implemented by kdag: keep the external job's id in "
    "context['task_state_store'] (set it right after submitting, get it first thing) to reattach on a retry"
)
DEADLINES = "deadline alerts and their callbacks need Airflow's scheduler"
LINEAGE = "lineage and OpenLineage need Airflow's lineage backends"
TEMPLATES = "literal() and custom template helpers are not part of kdag's templating"
PARSING_CONTEXT = "the DAG parsing context belongs to Airflow's DAG processor"
EXCEPTION = "kdag never raises this Airflow exception"
SECRETS = "secret masking belongs to Airflow's logging"
STATS = "Airflow's metrics (Stats) are not collected by kdag"
LINKS = "operator extra links belong to Airflow's web UI"
GENERIC_TRANSFER = "GenericTransfer needs Airflow's connections"

# Airflow 3's asset partitions and windows: refused (ASSETS) and served where airflow.sdk lists them.
ASSET_PARTITIONS = (
    "AllowedKeyMapper",
    "ChainMapper",
    "CronPartitionTimetable",
    "DayWindow",
    "FanOutMapper",
    "FixedKeyMapper",
    "HourWindow",
    "IdentityMapper",
    "MinimumCount",
    "MonthWindow",
    "PartitionMapper",
    "PartitionedAssetTimetable",
    "PartitionedAtRuntime",
    "ProductMapper",
    "QuarterWindow",
    "RollupMapper",
    "SegmentWindow",
    "StartOfDayMapper",
    "StartOfHourMapper",
    "StartOfMonthMapper",
    "StartOfQuarterMapper",
    "StartOfWeekMapper",
    "StartOfYearMapper",
    "WaitForAll",
    "WeekWindow",
    "Window",
    "YearWindow",
)

NOT_SUPPORTED: dict[str, str] = {
    **dict.fromkeys(
        ("BashSensor", "FileSensor", "TimeSensor", "TimeSensorAsync", "WaitSensor", "DayOfWeekSensor"),
        SENSORS,
    ),
    **dict.fromkeys(
        (
            "FileTrigger",
            "FileDeleteTrigger",
            "DirectoryFileDeleteTrigger",
            "DateTimeTrigger",
            "TimeDeltaTrigger",
            "WorkflowTrigger",
            "DagStateTrigger",
            "TaskDeferred",
            "BaseTrigger",
            "TriggerEvent",
        ),
        DEFERRABLE,
    ),
    **dict.fromkeys(
        (
            "Asset",
            "AssetAlias",
            "AssetAll",
            "AssetAny",
            "AssetAccessControl",
            "AssetOrTimeSchedule",
            "AssetWatcher",
            "AssetTriggeredTimetable",
            "Dataset",
            "DatasetAlias",
            "DatasetAll",
            "DatasetAny",
            "DatasetOrTimeSchedule",
            "DatasetTriggeredTimetable",
            "Metadata",
            "asset",
            *ASSET_PARTITIONS,
        ),
        ASSETS,
    ),
    **dict.fromkeys(
        (
            "PythonVirtualenvOperator",
            "ExternalPythonOperator",
            "BranchPythonVirtualenvOperator",
            "BranchExternalPythonOperator",
        ),
        VIRTUALENV,
    ),
    **dict.fromkeys(("HITLOperator", "ApprovalOperator", "HITLBranchOperator", "HITLEntryOperator"), HITL),
    **dict.fromkeys(("EmailOperator", "send_email"), EMAIL),
    "SubDagOperator": SUBDAG,
    **dict.fromkeys(("Variable", "Connection", "BaseHook", "XCom", "BaseXCom"), METADATA),
    **dict.fromkeys(
        (
            "AirflowPlugin",
            "hookimpl",
            "get_listener_manager",
            "BaseNotifier",
            "PriorityWeightStrategy",
        ),
        PLUGINS,
    ),
    "conf": CONFIGURATION,
    "ObjectStoragePath": OBJECT_STORAGE,
    **dict.fromkeys(
        (
            "ExceptionRetryPolicy",
            "RetryAction",
            "RetryDecision",
            "RetryPolicy",
            "RetryRule",
            "ChainRetryPolicy",
        ),
        RETRY_POLICY,
    ),
    **dict.fromkeys(("DagRunInfo", "DataInterval", "TimeRestriction"), CUSTOM_TIMETABLE),
    **dict.fromkeys(("AnalyticsOperator", "DataSourceConfig", "SQLExecuteQueryOperator"), SQL),
    **dict.fromkeys(
        (
            "DagRun",
            "RuntimeTaskInstance",
            "MappedOperator",
            "DecoratedMappedOperator",
            "TaskInstanceKey",
            "DagBag",
        ),
        RUNTIME,
    ),
    "ResumableJobMixin": RESUMABLE_JOB,
    **dict.fromkeys(
        (
            "DeadlineAlert",
            "DeadlineReference",
            "BaseDeadlineReference",
            "deadline_reference",
            "AsyncCallback",
            "SyncCallback",
        ),
        DEADLINES,
    ),
    **dict.fromkeys(
        (
            "lineage",
            "HookLineageCollector",
            "HookLineageReader",
            "get_hook_lineage_collector",
            "HookLineage",
            "NoOpCollector",
        ),
        LINEAGE,
    ),
    "literal": TEMPLATES,
    "get_parsing_context": PARSING_CONTEXT,
    **dict.fromkeys(
        (
            "AirflowNotFoundException",
            "AirflowOptionalProviderFeatureException",
            "AirflowTaskTimeout",
            "AirflowConfigException",
            "XComNotFound",
            "DagRunTriggerException",
        ),
        EXCEPTION,
    ),
    **dict.fromkeys(("redact", "mask_secret"), SECRETS),
    "Stats": STATS,
    "BaseOperatorLink": LINKS,
    "GenericTransfer": GENERIC_TRANSFER,
}

# -- Airflow's import paths and the names DAG files import from them -------------------------------------

_EXCEPTIONS = (
    "AirflowException",
    "AirflowSkipException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowTaskTimeout",
    "AirflowSensorTimeout",
    "AirflowRescheduleException",
    "AirflowConfigException",
    "ParamValidationError",
    "TaskDeferred",
    "XComNotFound",
    "DownstreamTasksSkipped",
    "DagRunTriggerException",
)
_PYTHON_OPERATORS = (
    "PythonOperator",
    "BranchPythonOperator",
    "ShortCircuitOperator",
    "PythonVirtualenvOperator",
    "ExternalPythonOperator",
    "BranchPythonVirtualenvOperator",
    "BranchExternalPythonOperator",
    "get_current_context",
)
_TIMETABLES = (
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "MultipleCronTriggerTimetable",
)
# ExternalTaskSensor's exceptions (the standard provider's ``exceptions`` module); ``compat`` serves kdag's,
# from airflow/external_task.py, at both paths.
EXTERNAL_TASK_EXCEPTIONS = (
    "AirflowExternalTaskSensorException",
    "ExternalDagNotFoundError",
    "ExternalDagDeletedError",
    "ExternalTaskNotFoundError",
    "ExternalTaskGroupNotFoundError",
    "ExternalTaskFailedError",
    "ExternalTaskGroupFailedError",
    "ExternalDagFailedError",
    "DuplicateStateError",
)
_DEPENDENCIES = ("chain", "chain_linear", "cross_downstream")
_DECORATORS = ("task", "dag", "task_group", "setup", "teardown")

# The names of ``airflow.sdk`` (Airflow 3's authoring interface), as its ``__all__`` lists them.
_SDK = (
    *_DECORATORS,
    *_DEPENDENCIES,
    *_TIMETABLES,
    "DAG",
    "BaseOperator",
    "BaseBranchOperator",
    "BaseSensorOperator",
    "BaseAsyncOperator",
    "BaseHook",
    "BaseNotifier",
    "BaseOperatorLink",
    "BaseXCom",
    "BranchMixIn",
    "SkipMixin",
    "Connection",
    "Variable",
    "Context",
    "DagRunState",
    "TaskInstanceState",
    "TaskInstance",
    "TriggerRule",
    "WeightRule",
    "EdgeModifier",
    "Label",
    "TaskGroup",
    "Param",
    "ParamsDict",
    "XComArg",
    "get_current_context",
    "get_parsing_context",
    "macros",
    "literal",
    "conf",
    "lineage",
    "ObjectStoragePath",
    "PokeReturnValue",
    "Metadata",
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "AssetAccessControl",
    "AssetOrTimeSchedule",
    "AssetWatcher",
    "asset",
    *ASSET_PARTITIONS,
    "AsyncCallback",
    "SyncCallback",
    "DeadlineAlert",
    "DeadlineReference",
    "BaseDeadlineReference",
    "deadline_reference",
    "ExceptionRetryPolicy",
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "RetryRule",
    "NEVER_EXPIRE",
    "ResumableJobMixin",
    "timezone",
)

# What ``airflow.providers.common.compat.sdk`` re-exports (the names that exist under kdag's paths too).
_COMMON_COMPAT_SDK = (
    *_SDK,
    *_EXCEPTIONS,
    "XCom",
    "AirflowPlugin",
    "MappedOperator",
    "DecoratedMappedOperator",
    "TaskInstanceKey",
    "XCOM_RETURN_KEY",
    "poke_mode_only",
    "hookimpl",
    "get_listener_manager",
    "redact",
    "mask_secret",
    "Stats",
    "ChainRetryPolicy",
    "HookLineageCollector",
    "HookLineageReader",
    "get_hook_lineage_collector",
    "HookLineage",
    "NoOpCollector",
)

AIRFLOW_PATHS: dict[str, tuple[str, ...]] = {
    # -- Airflow 2.x (and 1.x) paths
    "airflow": ("DAG", "XComArg", "Dataset", "Asset"),
    "airflow.models": (
        "DAG",
        "BaseOperator",
        "Param",
        "TaskInstance",
        "DagRun",
        "Variable",
        "Connection",
        "XCom",
        "DagBag",
        "MappedOperator",
        "BaseOperatorLink",
    ),
    "airflow.models.dag": ("DAG",),
    "airflow.models.baseoperator": ("BaseOperator", "BaseOperatorLink", *_DEPENDENCIES),
    "airflow.models.param": ("Param", "ParamsDict"),
    "airflow.models.xcom": ("XCOM_RETURN_KEY", "XCom", "BaseXCom"),
    "airflow.models.xcom_arg": ("XComArg",),
    "airflow.models.taskinstance": ("TaskInstance",),
    "airflow.models.dagrun": ("DagRun",),
    "airflow.models.variable": ("Variable",),
    "airflow.models.connection": ("Connection",),
    "airflow.models.mappedoperator": ("MappedOperator",),
    "airflow.models.baseoperatorlink": ("BaseOperatorLink",),
    "airflow.models.skipmixin": ("SkipMixin",),
    "airflow.operators": ("PythonOperator", "BashOperator", "EmptyOperator", "DummyOperator"),
    "airflow.operators.python": (*_PYTHON_OPERATORS, "is_venv_installed"),
    "airflow.operators.python_operator": _PYTHON_OPERATORS,
    "airflow.operators.bash": ("BashOperator",),
    "airflow.operators.bash_operator": ("BashOperator",),
    "airflow.operators.empty": ("EmptyOperator",),
    "airflow.operators.dummy": ("DummyOperator", "EmptyOperator"),
    "airflow.operators.dummy_operator": ("DummyOperator", "EmptyOperator"),
    "airflow.operators.branch": ("BaseBranchOperator", "BranchMixIn"),
    "airflow.operators.branch_operator": ("BaseBranchOperator",),
    "airflow.operators.latest_only": ("LatestOnlyOperator",),
    "airflow.operators.latest_only_operator": ("LatestOnlyOperator",),
    "airflow.operators.datetime": ("BranchDateTimeOperator", "target_times_as_dates"),
    "airflow.operators.weekday": ("BranchDayOfWeekOperator",),
    "airflow.operators.trigger_dagrun": ("TriggerDagRunOperator", "TriggerDagRunLink"),
    "airflow.operators.email": ("EmailOperator",),
    "airflow.operators.email_operator": ("EmailOperator",),
    "airflow.operators.subdag": ("SubDagOperator",),
    "airflow.operators.subdag_operator": ("SubDagOperator",),
    "airflow.operators.generic_transfer": ("GenericTransfer",),
    "airflow.sensors.base": ("BaseSensorOperator", "PokeReturnValue", "poke_mode_only"),
    "airflow.sensors.base_sensor_operator": ("BaseSensorOperator",),
    "airflow.sensors.bash": ("BashSensor",),
    "airflow.sensors.date_time": ("DateTimeSensor", "DateTimeSensorAsync"),
    "airflow.sensors.external_task": ("ExternalTaskSensor", "ExternalTaskMarker", "ExternalDagLink"),
    "airflow.sensors.external_task_sensor": ("ExternalTaskSensor", "ExternalTaskMarker"),
    "airflow.sensors.filesystem": ("FileSensor",),
    "airflow.sensors.python": ("PythonSensor",),
    "airflow.sensors.time_sensor": ("TimeSensor", "TimeSensorAsync"),
    "airflow.sensors.time_delta": ("TimeDeltaSensor", "TimeDeltaSensorAsync", "WaitSensor"),
    "airflow.sensors.weekday": ("DayOfWeekSensor",),
    "airflow.triggers.base": ("BaseTrigger", "TriggerEvent"),
    "airflow.triggers.file": ("FileTrigger",),
    "airflow.triggers.temporal": ("DateTimeTrigger", "TimeDeltaTrigger"),
    "airflow.decorators": _DECORATORS,
    "airflow.exceptions": _EXCEPTIONS,
    "airflow.utils.dates": ("days_ago",),
    "airflow.utils.trigger_rule": ("TriggerRule",),
    "airflow.utils.helpers": ("chain", "cross_downstream"),
    "airflow.utils.edgemodifier": ("Label", "EdgeModifier"),
    "airflow.utils.task_group": ("TaskGroup",),
    "airflow.utils.state": ("State", "TaskInstanceState", "DagRunState"),
    "airflow.utils.context": ("Context", "get_current_context"),
    "airflow.utils.timezone": ("utcnow", "datetime", "utc", "parse", "make_aware", "convert_to_utc"),
    "airflow.utils.weekday": ("WeekDay",),
    "airflow.utils.weight_rule": ("WeightRule",),
    "airflow.utils.email": ("send_email",),
    "airflow.macros": ("ds_add", "ds_format", "datetime", "timedelta", "json", "time", "uuid", "random"),
    "airflow.datasets": ("Dataset", "DatasetAlias", "DatasetAll", "DatasetAny"),
    "airflow.datasets.metadata": ("Metadata",),
    "airflow.assets": ("Asset", "AssetAlias", "AssetAll", "AssetAny"),
    "airflow.io.path": ("ObjectStoragePath",),
    "airflow.hooks.base": ("BaseHook",),
    "airflow.configuration": ("conf",),
    "airflow.plugins_manager": ("AirflowPlugin",),
    "airflow.listeners": ("hookimpl",),
    "airflow.notifications.basenotifier": ("BaseNotifier",),
    "airflow.task.priority_strategy": ("PriorityWeightStrategy",),
    # -- timetables (Airflow 2.x and 3.x paths)
    "airflow.timetables.base": ("Timetable", "DagRunInfo", "DataInterval", "TimeRestriction"),
    "airflow.timetables.trigger": (
        "CronTriggerTimetable",
        "DeltaTriggerTimetable",
        "MultipleCronTriggerTimetable",
        "CronPartitionTimetable",
    ),
    "airflow.timetables.interval": ("CronDataIntervalTimetable", "DeltaDataIntervalTimetable"),
    "airflow.timetables.events": ("EventsTimetable",),
    "airflow.timetables.simple": (
        "NullTimetable",
        "OnceTimetable",
        "ContinuousTimetable",
        "AssetTriggeredTimetable",
        "DatasetTriggeredTimetable",
    ),
    "airflow.timetables.datasets": ("DatasetOrTimeSchedule",),
    "airflow.timetables.assets": ("AssetOrTimeSchedule",),
    # -- Airflow 3.x: the task SDK
    "airflow.sdk": _SDK,
    "airflow.sdk.exceptions": _EXCEPTIONS,
    "airflow.sdk.timezone": ("utcnow", "datetime", "utc", "parse", "make_aware", "convert_to_utc"),
    "airflow.sdk.bases.operator": ("BaseOperator", "BaseAsyncOperator", *_DEPENDENCIES),
    "airflow.sdk.bases.sensor": ("BaseSensorOperator", "PokeReturnValue", "poke_mode_only"),
    "airflow.sdk.bases.notifier": ("BaseNotifier",),
    "airflow.sdk.bases.hook": ("BaseHook",),
    "airflow.sdk.bases.xcom": ("BaseXCom",),
    "airflow.sdk.definitions.dag": ("DAG", "dag"),
    "airflow.sdk.definitions.param": ("Param", "ParamsDict"),
    "airflow.sdk.definitions.taskgroup": ("TaskGroup",),
    "airflow.sdk.definitions.edges": ("Label", "EdgeModifier"),
    "airflow.sdk.definitions.xcom_arg": ("XComArg",),
    "airflow.sdk.definitions.context": ("Context", "get_current_context"),
    "airflow.sdk.definitions.asset": ("Asset", "AssetAlias", "AssetAll", "AssetAny"),
    "airflow.sdk.definitions.decorators": _DECORATORS,
    "airflow.sdk.execution_time.context": ("NEVER_EXPIRE", "get_current_context"),
    "airflow.sdk.execution_time.task_runner": ("RuntimeTaskInstance",),
    "airflow.sdk.execution_time.xcom": ("XCom",),
    # -- the standard provider (Airflow 3's home of the core operators and sensors)
    "airflow.providers.standard.operators.python": _PYTHON_OPERATORS,
    "airflow.providers.standard.operators.bash": ("BashOperator",),
    "airflow.providers.standard.operators.empty": ("EmptyOperator",),
    "airflow.providers.standard.operators.branch": ("BaseBranchOperator", "BranchMixIn"),
    "airflow.providers.standard.operators.latest_only": ("LatestOnlyOperator",),
    "airflow.providers.standard.operators.datetime": ("BranchDateTimeOperator", "target_times_as_dates"),
    "airflow.providers.standard.operators.weekday": ("BranchDayOfWeekOperator",),
    "airflow.providers.standard.operators.trigger_dagrun": ("TriggerDagRunOperator", "TriggerDagRunLink"),
    "airflow.providers.standard.operators.hitl": (
        "HITLOperator",
        "ApprovalOperator",
        "HITLBranchOperator",
        "HITLEntryOperator",
    ),
    "airflow.providers.standard.sensors.bash": ("BashSensor",),
    "airflow.providers.standard.sensors.date_time": ("DateTimeSensor", "DateTimeSensorAsync"),
    "airflow.providers.standard.sensors.external_task": (
        "ExternalTaskSensor",
        "ExternalTaskMarker",
        "ExternalDagLink",
    ),
    "airflow.providers.standard.sensors.filesystem": ("FileSensor",),
    "airflow.providers.standard.sensors.python": ("PythonSensor",),
    "airflow.providers.standard.sensors.time": ("TimeSensor", "TimeSensorAsync"),
    "airflow.providers.standard.sensors.time_delta": (
        "TimeDeltaSensor",
        "TimeDeltaSensorAsync",
        "WaitSensor",
    ),
    "airflow.providers.standard.sensors.weekday": ("DayOfWeekSensor",),
    "airflow.providers.standard.triggers.file": (
        "FileTrigger",
        "FileDeleteTrigger",
        "DirectoryFileDeleteTrigger",
    ),
    "airflow.providers.standard.triggers.temporal": ("DateTimeTrigger", "TimeDeltaTrigger"),
    "airflow.providers.standard.triggers.external_task": ("WorkflowTrigger", "DagStateTrigger"),
    "airflow.providers.standard.exceptions": EXTERNAL_TASK_EXCEPTIONS,
    "airflow.providers.standard.utils.weekday": ("WeekDay",),
    "airflow.providers.standard.utils.skipmixin": ("SkipMixin",),
    # -- airflow.providers.common.compat: one import path for Airflow 2 and 3
    "airflow.providers.common.compat.sdk": _COMMON_COMPAT_SDK,
    "airflow.providers.common.compat.standard.operators": (
        "BaseBranchOperator",
        "BaseOperator",
        "BranchMixIn",
        "get_current_context",
        "PythonOperator",
        "ShortCircuitOperator",
        "BaseAsyncOperator",
        "is_async_callable",
    ),
    "airflow.providers.common.compat.standard.utils": ("SkipMixin",),
    "airflow.providers.common.compat.standard.triggers": ("TimeDeltaTrigger",),
    "airflow.providers.common.compat.assets": ("Asset", "AssetAlias", "AssetAll", "AssetAny"),
    # -- other providers the example DAGs import
    "airflow.providers.common.sql.operators.analytics": ("AnalyticsOperator",),
    "airflow.providers.common.sql.operators.sql": ("SQLExecuteQueryOperator",),
    "airflow.providers.common.sql.config": ("DataSourceConfig",),
}

# Names that are modules of the shim: ``from airflow.sdk import timezone`` is the module
# ``airflow.sdk.timezone``.
MODULE_NAMES: dict[str, str] = {"timezone": "airflow.sdk.timezone"}

# Module path prefixes kdag does not serve at all, and why (longest prefix wins); other unlisted paths get
# the generic reason.
NOT_SUPPORTED_MODULES: dict[str, str] = {
    "airflow.providers": (
        "kdag serves the standard provider's operators and airflow.providers.common.compat; other providers' "
        "operators and hooks need Airflow and their connections"
    ),
    "airflow.example_dags": "Airflow's example helper modules are not part of kdag",
    "airflow.sensors": SENSORS,
    "airflow.providers.standard.sensors": SENSORS,
    "airflow.triggers": DEFERRABLE,
    "airflow.providers.standard.triggers": DEFERRABLE,
    "airflow.sdk.definitions.asset": ASSETS,
    "airflow.partition_mappers": ASSETS,
    "airflow.listeners": PLUGINS,
    "airflow.plugins_manager": PLUGINS,
    "airflow.task.priority_strategy": PLUGINS,
}
