"""Enqueue and follow Corral jobs from Python.

The API's models and routes are generated from Corral's OpenAPI document
into ``corral_client._api`` (``just clients``); this module adds what a
generator does badly: one call per task, waiting and watching over
Server-Sent Events, plugin upload, idempotency keys, and every refusal as
one exception carrying the API's ``code``::

    from corral_client import Corral

    corral = Corral("http://127.0.0.1:8080", token="corral_…")
    job = corral.enqueue("markdown", {"markdown": "# Hi"}, idempotency_key="order-7")
    done = corral.wait(job.id, timeout=60)
    print(done.state, done.result)
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
from httpx_sse import connect_sse

from ._api import AuthenticatedClient
from ._api.api.jobs import cancel_job, cancel_jobs, create_job, create_jobs, get_job, replay_jobs
from ._api.api.workflows import start_run
from ._api.models import (
    BatchCreated,
    BulkRequest,
    CreateBatch,
    CreateJob,
    CreateRun,
    ErrorBody,
    Job,
    JobSelector,
    JobState,
    PluginView,
    Progress
)
from ._api.types import UNSET, Response

__all__ = [
    "BulkResult",
    "Corral",
    "CorralError",
    "Job",
    "JobState",
    "NewJob",
    "PluginView",
    "Progress",
    "StateEvent",
    "ProgressEvent",
    "TERMINAL_STATES",
    "WorkflowRun",
]

#: States a job does not leave.
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})

#: A job of a batch, as ``POST /v1/jobs`` takes it.
NewJob = CreateJob


class CorralError(Exception):
    """An answer of the API that is not a success."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        #: The HTTP status (0 when there was no answer in time).
        self.status = status
        #: The API's stable snake_case code (``unknown_plugin``, ``queue_full``, …).
        self.code = code
        self.message = message
        #: Seconds to wait before retrying, from ``Retry-After`` (429 and 503).
        self.retry_after = retry_after

    @classmethod
    def of(cls, response: httpx.Response) -> CorralError:
        try:
            detail = response.json().get("error", {})
        except (ValueError, AttributeError):
            detail = {}
        retry_after = response.headers.get("retry-after")
        return cls(
            response.status_code,
            str(detail.get("code") or f"http_{response.status_code}"),
            str(detail.get("message") or response.reason_phrase),
            int(retry_after) if retry_after and retry_after.isdigit() else None,
        )


@dataclass(frozen=True)
class BulkResult:
    """What a bulk replay or cancel did (every request of it), or would do."""

    #: The jobs replayed or cancelled (none on a dry run).
    jobs: list[UUID]
    #: Replay: the new jobs, in the order of ``jobs``.
    replays: list[UUID]
    #: Dry run: how many jobs match, and whether that is a lower bound.
    matched: int | None = None
    matched_is_lower_bound: bool = False


@dataclass(frozen=True)
class StateEvent:
    """The job's whole state: first, and on every change."""

    job: Job


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report of the job's plugin."""

    progress: Progress


class Corral:
    """A client of one Corral API with one key (a tenant's, or an admin's)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        #: The generated client, for every route this class has no method for.
        self.api = AuthenticatedClient(
            base_url=base_url.rstrip("/"),
            token=token,
            timeout=httpx.Timeout(timeout),
            raise_on_unexpected_status=False,
        )

    def __enter__(self) -> Corral:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.api.get_httpx_client().close()

    def enqueue(
        self,
        plugin: str,
        input: Any,
        *,
        version: int | None = None,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime.datetime | None = None,
        max_attempts: int | None = None,
        timeout_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Enqueue one job; with ``idempotency_key``, a retry answers the first job."""
        body = CreateJob(
            plugin=plugin,
            input_=input,
            version=UNSET if version is None else version,
            queue=UNSET if queue is None else queue,
            priority=UNSET if priority is None else priority,
            run_at=UNSET if run_at is None else run_at,
            max_attempts=UNSET if max_attempts is None else max_attempts,
            timeout_ms=UNSET if timeout_ms is None else timeout_ms,
        )
        return _answer(
            create_job.sync_detailed(
                client=self.api, body=body, idempotency_key=_key(idempotency_key)
            )
        )

    def enqueue_batch(
        self, jobs: Sequence[NewJob], *, idempotency_key: str | None = None
    ) -> list[UUID]:
        """Enqueue up to 1000 jobs, all or nothing; their ids, in order."""
        created: BatchCreated = _answer(
            create_jobs.sync_detailed(
                client=self.api,
                body=CreateBatch(jobs=list(jobs)),
                idempotency_key=_key(idempotency_key),
            )
        )
        return list(created.ids)

    def get_job(self, id: UUID | str) -> Job:
        return _answer(get_job.sync_detailed(str(id), client=self.api))

    def cancel(self, id: UUID | str) -> Job:
        return _answer(cancel_job.sync_detailed(str(id), client=self.api))

    def replay_jobs(self, filter: dict[str, Any] | None = None, *, dry_run: bool = False) -> BulkResult:
        """Replay every finished job ``filter`` selects (``state``, ``plugin``,
        ``queue``, ``error_contains``, ``created_after``, ``created_before``;
        dead jobs unless ``state`` names another finished state), each once,
        following the API's cursor until none are left (1,000 a request).
        ``dry_run`` only counts them."""
        return self._bulk(replay_jobs, filter, dry_run)

    def cancel_jobs(self, filter: dict[str, Any] | None = None, *, dry_run: bool = False) -> BulkResult:
        """Cancel every unfinished job ``filter`` selects, as ``replay_jobs`` replays."""
        return self._bulk(cancel_jobs, filter, dry_run)

    def _bulk(self, route: Any, filter: dict[str, Any] | None, dry_run: bool) -> BulkResult:
        selector = JobSelector.from_dict(filter or {})
        jobs: list[UUID] = []
        replays: list[UUID] = []
        cursor: str | None = None
        while True:
            body = BulkRequest(filter_=selector, dry_run=dry_run, cursor=UNSET if cursor is None else cursor)
            outcome = _answer(route.sync_detailed(client=self.api, body=body))
            if dry_run:
                matched = outcome.matched if isinstance(outcome.matched, int) else 0
                return BulkResult([], [], matched, bool(outcome.matched_is_lower_bound))
            jobs.extend(outcome.jobs)
            replays.extend(outcome.replays or [])
            following = outcome.next_cursor if isinstance(outcome.next_cursor, str) else None
            # A cursor that does not move would loop forever.
            if following is None or following == cursor:
                return BulkResult(jobs, replays)
            cursor = following

    def start_run(
        self,
        workflow: str,
        input: Any = None,
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowRun:
        """Start a run of a workflow."""
        body = CreateRun.from_dict(
            {"input": {} if input is None else input, "version": version}
        )
        return _answer(
            start_run.sync_detailed(
                workflow,
                client=self.api,
                body=body,
                idempotency_key=_key(idempotency_key),
            )
        )

    def upload_plugin(
        self,
        name: str,
        component: bytes,
        *,
        fuel: int | None = None,
        memory_mb: int | None = None,
        timeout_ms: int | None = None,
        max_attempts: int | None = None,
        http: Any = None,
    ) -> PluginView:
        """Upload a component as a new version of plugin ``name`` (the
        latest version when its bytes are the same)."""
        params: dict[str, str] = {}
        for key, value in (
            ("fuel", fuel),
            ("memory_mb", memory_mb),
            ("timeout_ms", timeout_ms),
            ("max_attempts", max_attempts),
        ):
            if value is not None:
                params[key] = str(value)
        if http is not None:
            params["http"] = json.dumps(http)
        response = self.api.get_httpx_client().post(
            f"/v1/plugins/{quote(name, safe='')}",
            content=component,
            params=params,
            headers={"content-type": "application/wasm"},
        )
        if response.is_error:
            raise CorralError.of(response)
        return PluginView.from_dict(response.json())

    def watch(
        self, id: UUID | str, *, timeout: float | None = None
    ) -> Iterator[StateEvent | ProgressEvent]:
        """The job's events until it ends: its whole state first and on
        every change, and each progress report. ``timeout`` bounds the
        wait for each event (``None``: no bound)."""
        client = self.api.get_httpx_client()
        with connect_sse(
            client,
            "GET",
            f"/v1/jobs/{quote(str(id), safe='')}/events",
            timeout=httpx.Timeout(self._timeout, read=timeout),
        ) as source:
            if source.response.is_error:
                source.response.read()
                raise CorralError.of(source.response)
            for event in source.iter_sse():
                if event.event == "state":
                    yield StateEvent(Job.from_dict(event.json()))
                elif event.event == "progress":
                    yield ProgressEvent(Progress.from_dict(event.json()))

    def wait(self, id: UUID | str, *, timeout: float | None = None) -> Job:
        """The job once it has ended (``completed``, ``dead`` or
        ``cancelled``), followed over Server-Sent Events; ``CorralError``
        with code ``timeout`` after ``timeout`` seconds."""
        deadline = (
            None
            if timeout is None
            else datetime.datetime.now(datetime.UTC)
            + datetime.timedelta(seconds=timeout)
        )
        while True:
            left = (
                None
                if deadline is None
                else (deadline - datetime.datetime.now(datetime.UTC)).total_seconds()
            )
            if left is not None and left <= 0:
                raise CorralError(0, "timeout", f"job {id} did not end within {timeout} s")
            try:
                for event in self.watch(id, timeout=left):
                    if isinstance(event, StateEvent) and event.job.state in TERMINAL_STATES:
                        return event.job
            except httpx.ReadTimeout:
                raise CorralError(
                    0, "timeout", f"job {id} did not end within {timeout} s"
                ) from None
            # The stream ended early (a restarted host): ask once more.
            job = self.get_job(id)
            if job.state in TERMINAL_STATES:
                return job


def _key(key: str | None) -> str | Any:
    return UNSET if key is None else key


def _answer(response: Response[Any]) -> Any:
    """The parsed body of a generated call, or its refusal raised."""
    if 200 <= response.status_code < 300 and not isinstance(response.parsed, ErrorBody):
        return response.parsed
    raise CorralError.of(
        httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )
    )
