from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.on_failure import OnFailure
from ..models.step_state import StepState
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.step_run_result_type_0 import StepRunResultType0


T = TypeVar("T", bound="StepRun")


@_attrs_define
class StepRun:
    """One step of a run.

    Attributes:
        name (str):
        plugin (str):
        version (int): The plugin version, pinned when the run started.
        state (StepState): Where one step of a run is.
        depends_on (list[str]):
        on_failure (OnFailure): What a failed step does to its run.
        items_started (int): Fan-out: element jobs created so far.
        items_done (int): Fan-out: element jobs finished so far.
        job_id (None | Unset | UUID): The step's job (none for a fan-out step: see `items`).
        items (int | None | Unset): A fan-out step's element count, once it started.
        result (None | StepRunResultType0 | Unset): The job's result (a fan-out step: the array of its elements'
            results).
        error (None | str | Unset):
        skipped_by (None | str | Unset): For a step skipped because an upstream step failed: that step.
        started_at (datetime.datetime | None | Unset):
        finished_at (datetime.datetime | None | Unset):
    """

    name: str
    plugin: str
    version: int
    state: StepState
    depends_on: list[str]
    on_failure: OnFailure
    items_started: int
    items_done: int
    job_id: None | Unset | UUID = UNSET
    items: int | None | Unset = UNSET
    result: None | StepRunResultType0 | Unset = UNSET
    error: None | str | Unset = UNSET
    skipped_by: None | str | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.step_run_result_type_0 import StepRunResultType0

        name = self.name

        plugin = self.plugin

        version = self.version

        state = self.state.value

        depends_on = self.depends_on

        on_failure = self.on_failure.value

        items_started = self.items_started

        items_done = self.items_done

        job_id: None | str | Unset
        if isinstance(self.job_id, Unset):
            job_id = UNSET
        elif isinstance(self.job_id, UUID):
            job_id = str(self.job_id)
        else:
            job_id = self.job_id

        items: int | None | Unset
        if isinstance(self.items, Unset):
            items = UNSET
        else:
            items = self.items

        result: dict[str, Any] | None | Unset
        if isinstance(self.result, Unset):
            result = UNSET
        elif isinstance(self.result, StepRunResultType0):
            result = self.result.to_dict()
        else:
            result = self.result

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        skipped_by: None | str | Unset
        if isinstance(self.skipped_by, Unset):
            skipped_by = UNSET
        else:
            skipped_by = self.skipped_by

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

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
                "plugin": plugin,
                "version": version,
                "state": state,
                "depends_on": depends_on,
                "on_failure": on_failure,
                "items_started": items_started,
                "items_done": items_done,
            }
        )
        if job_id is not UNSET:
            field_dict["job_id"] = job_id
        if items is not UNSET:
            field_dict["items"] = items
        if result is not UNSET:
            field_dict["result"] = result
        if error is not UNSET:
            field_dict["error"] = error
        if skipped_by is not UNSET:
            field_dict["skipped_by"] = skipped_by
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.step_run_result_type_0 import StepRunResultType0

        d = dict(src_dict)
        name = d.pop("name")

        plugin = d.pop("plugin")

        version = d.pop("version")

        state = StepState(d.pop("state"))

        depends_on = cast(list[str], d.pop("depends_on"))

        on_failure = OnFailure(d.pop("on_failure"))

        items_started = d.pop("items_started")

        items_done = d.pop("items_done")

        def _parse_job_id(data: object) -> None | Unset | UUID:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                job_id_type_0 = UUID(data)

                return job_id_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UUID, data)

        job_id = _parse_job_id(d.pop("job_id", UNSET))

        def _parse_items(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        items = _parse_items(d.pop("items", UNSET))

        def _parse_result(data: object) -> None | StepRunResultType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                result_type_0 = StepRunResultType0.from_dict(data)

                return result_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StepRunResultType0 | Unset, data)

        result = _parse_result(d.pop("result", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_skipped_by(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        skipped_by = _parse_skipped_by(d.pop("skipped_by", UNSET))

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

        step_run = cls(
            name=name,
            plugin=plugin,
            version=version,
            state=state,
            depends_on=depends_on,
            on_failure=on_failure,
            items_started=items_started,
            items_done=items_done,
            job_id=job_id,
            items=items,
            result=result,
            error=error,
            skipped_by=skipped_by,
            started_at=started_at,
            finished_at=finished_at,
        )

        step_run.additional_properties = d
        return step_run

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
