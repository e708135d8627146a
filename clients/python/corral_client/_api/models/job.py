from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.job_state import JobState
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.progress import Progress


T = TypeVar("T", bound="Job")


@_attrs_define
class Job:
    """A job in API responses (docs/api.md, "Jobs"). Input and result are JSON.

    Attributes:
        id (UUID):
        plugin (str):
        version (int):
        digest (str):
        queue (str):
        priority (int):
        state (JobState): The job state machine (docs/job-states.md).
        attempt (int):
        max_attempts (int):
        run_at (datetime.datetime):
        created_at (datetime.datetime):
        input_ (Any | Unset): The job's JSON input. Listings leave it out unless asked
            (`include=input`).
        result (Any | Unset): The plugin's JSON result, once `completed`. Listings leave it out
            unless asked (`include=result`).
        error (None | str | Unset):
        started_at (datetime.datetime | None | Unset):
        finished_at (datetime.datetime | None | Unset):
        progress (None | Progress | Unset):
        replay_of (None | Unset | UUID): The job this one replays.
        workflow_run_id (None | Unset | UUID): The workflow run this job is a step of.
        workflow_step (None | str | Unset): The step of that run.
    """

    id: UUID
    plugin: str
    version: int
    digest: str
    queue: str
    priority: int
    state: JobState
    attempt: int
    max_attempts: int
    run_at: datetime.datetime
    created_at: datetime.datetime
    input_: Any | Unset = UNSET
    result: Any | Unset = UNSET
    error: None | str | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    progress: None | Progress | Unset = UNSET
    replay_of: None | Unset | UUID = UNSET
    workflow_run_id: None | Unset | UUID = UNSET
    workflow_step: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.progress import Progress

        id = str(self.id)

        plugin = self.plugin

        version = self.version

        digest = self.digest

        queue = self.queue

        priority = self.priority

        state = self.state.value

        attempt = self.attempt

        max_attempts = self.max_attempts

        run_at = self.run_at.isoformat()

        created_at = self.created_at.isoformat()

        input_ = self.input_

        result = self.result

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        progress: dict[str, Any] | None | Unset
        if isinstance(self.progress, Unset):
            progress = UNSET
        elif isinstance(self.progress, Progress):
            progress = self.progress.to_dict()
        else:
            progress = self.progress

        replay_of: None | str | Unset
        if isinstance(self.replay_of, Unset):
            replay_of = UNSET
        elif isinstance(self.replay_of, UUID):
            replay_of = str(self.replay_of)
        else:
            replay_of = self.replay_of

        workflow_run_id: None | str | Unset
        if isinstance(self.workflow_run_id, Unset):
            workflow_run_id = UNSET
        elif isinstance(self.workflow_run_id, UUID):
            workflow_run_id = str(self.workflow_run_id)
        else:
            workflow_run_id = self.workflow_run_id

        workflow_step: None | str | Unset
        if isinstance(self.workflow_step, Unset):
            workflow_step = UNSET
        else:
            workflow_step = self.workflow_step

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "plugin": plugin,
                "version": version,
                "digest": digest,
                "queue": queue,
                "priority": priority,
                "state": state,
                "attempt": attempt,
                "max_attempts": max_attempts,
                "run_at": run_at,
                "created_at": created_at,
            }
        )
        if input_ is not UNSET:
            field_dict["input"] = input_
        if result is not UNSET:
            field_dict["result"] = result
        if error is not UNSET:
            field_dict["error"] = error
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if progress is not UNSET:
            field_dict["progress"] = progress
        if replay_of is not UNSET:
            field_dict["replay_of"] = replay_of
        if workflow_run_id is not UNSET:
            field_dict["workflow_run_id"] = workflow_run_id
        if workflow_step is not UNSET:
            field_dict["workflow_step"] = workflow_step

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.progress import Progress

        d = dict(src_dict)
        id = UUID(d.pop("id"))

        plugin = d.pop("plugin")

        version = d.pop("version")

        digest = d.pop("digest")

        queue = d.pop("queue")

        priority = d.pop("priority")

        state = JobState(d.pop("state"))

        attempt = d.pop("attempt")

        max_attempts = d.pop("max_attempts")

        run_at = datetime.datetime.fromisoformat(d.pop("run_at"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        input_ = d.pop("input", UNSET)

        result = d.pop("result", UNSET)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)

                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))

        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))

        def _parse_progress(data: object) -> None | Progress | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                progress_type_0 = Progress.from_dict(data)

                return progress_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Progress | Unset, data)

        progress = _parse_progress(d.pop("progress", UNSET))

        def _parse_replay_of(data: object) -> None | Unset | UUID:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                replay_of_type_0 = UUID(data)

                return replay_of_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UUID, data)

        replay_of = _parse_replay_of(d.pop("replay_of", UNSET))

        def _parse_workflow_run_id(data: object) -> None | Unset | UUID:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                workflow_run_id_type_0 = UUID(data)

                return workflow_run_id_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UUID, data)

        workflow_run_id = _parse_workflow_run_id(d.pop("workflow_run_id", UNSET))

        def _parse_workflow_step(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workflow_step = _parse_workflow_step(d.pop("workflow_step", UNSET))

        job = cls(
            id=id,
            plugin=plugin,
            version=version,
            digest=digest,
            queue=queue,
            priority=priority,
            state=state,
            attempt=attempt,
            max_attempts=max_attempts,
            run_at=run_at,
            created_at=created_at,
            input_=input_,
            result=result,
            error=error,
            started_at=started_at,
            finished_at=finished_at,
            progress=progress,
            replay_of=replay_of,
            workflow_run_id=workflow_run_id,
            workflow_step=workflow_step,
        )

        job.additional_properties = d
        return job

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
