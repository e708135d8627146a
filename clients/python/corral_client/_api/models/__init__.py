"""Contains all the data models used in inputs/outputs"""

from .admin_key_list import AdminKeyList
from .admin_key_view import AdminKeyView
from .allow_entry_type_1 import AllowEntryType1
from .attempt import Attempt
from .attempt_list import AttemptList
from .attempt_log import AttemptLog
from .batch_created import BatchCreated
from .bulk_outcome import BulkOutcome
from .bulk_request import BulkRequest
from .call_result import CallResult
from .create_batch import CreateBatch
from .create_job import CreateJob
from .create_run import CreateRun
from .create_tenant import CreateTenant
from .created_key import CreatedKey
from .dead_letter_group import DeadLetterGroup
from .dead_letters import DeadLetters
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .finished_minute import FinishedMinute
from .host_alive import HostAlive
from .http_call import HttpCall
from .http_calls import HttpCalls
from .http_settings import HttpSettings
from .job import Job
from .job_event import JobEvent
from .job_event_kind import JobEventKind
from .job_list import JobList
from .job_selector import JobSelector
from .job_state import JobState
from .limits import Limits
from .log_list import LogList
from .on_failure import OnFailure
from .outcome_kind import OutcomeKind
from .overview import Overview
from .overview_live import OverviewLive
from .overview_running_by_host import OverviewRunningByHost
from .plugin_list import PluginList
from .plugin_versions import PluginVersions
from .plugin_view import PluginView
from .progress import Progress
from .quota_patch import QuotaPatch
from .quotas import Quotas
from .run_event import RunEvent
from .run_list import RunList
from .run_state import RunState
from .run_summary import RunSummary
from .schedule import Schedule
from .schedule_list import ScheduleList
from .schedule_spec import ScheduleSpec
from .secret_info import SecretInfo
from .secret_list import SecretList
from .secret_value import SecretValue
from .status import Status
from .step_run import StepRun
from .step_run_result_type_0 import StepRunResultType0
from .step_spec import StepSpec
from .step_spec_input_type_0 import StepSpecInputType0
from .step_state import StepState
from .target import Target
from .target_input import TargetInput
from .tenant import Tenant
from .tenant_list import TenantList
from .tick import Tick
from .update_plugin import UpdatePlugin
from .update_plugin_config_type_0 import UpdatePluginConfigType0
from .update_tenant import UpdateTenant
from .upload_limits import UploadLimits
from .workflow import Workflow
from .workflow_list import WorkflowList
from .workflow_run import WorkflowRun
from .workflow_run_input import WorkflowRunInput
from .workflow_spec import WorkflowSpec

__all__ = (
    "AdminKeyList",
    "AdminKeyView",
    "AllowEntryType1",
    "Attempt",
    "AttemptList",
    "AttemptLog",
    "BatchCreated",
    "BulkOutcome",
    "BulkRequest",
    "CallResult",
    "CreateBatch",
    "CreateJob",
    "CreateRun",
    "CreateTenant",
    "CreatedKey",
    "DeadLetterGroup",
    "DeadLetters",
    "ErrorBody",
    "ErrorDetail",
    "FinishedMinute",
    "HostAlive",
    "HttpCall",
    "HttpCalls",
    "HttpSettings",
    "Job",
    "JobEvent",
    "JobEventKind",
    "JobList",
    "JobSelector",
    "JobState",
    "Limits",
    "LogList",
    "OnFailure",
    "OutcomeKind",
    "Overview",
    "OverviewLive",
    "OverviewRunningByHost",
    "PluginList",
    "PluginVersions",
    "PluginView",
    "Progress",
    "QuotaPatch",
    "Quotas",
    "RunEvent",
    "RunList",
    "RunState",
    "RunSummary",
    "Schedule",
    "ScheduleList",
    "ScheduleSpec",
    "SecretInfo",
    "SecretList",
    "SecretValue",
    "Status",
    "StepRun",
    "StepRunResultType0",
    "StepSpec",
    "StepSpecInputType0",
    "StepState",
    "Target",
    "TargetInput",
    "Tenant",
    "TenantList",
    "Tick",
    "UpdatePlugin",
    "UpdatePluginConfigType0",
    "UpdateTenant",
    "UploadLimits",
    "Workflow",
    "WorkflowList",
    "WorkflowRun",
    "WorkflowRunInput",
    "WorkflowSpec",
)
