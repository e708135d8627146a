from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="CreateJob")


@_attrs_define
class CreateJob:
    """A job to create (docs/api.md, `POST /v1/jobs`).

    Attributes:
        plugin (str):
        input_ (Any): Any JSON value, kept as the client wrote it.
        version (int | None | Unset): The plugin version to pin; the latest when absent.
        queue (None | str | Unset):
        priority (int | None | Unset):
        run_at (datetime.datetime | None | Unset):
        max_attempts (int | None | Unset):
        timeout_ms (int | None | Unset):
    """

    plugin: str
    input_: Any
    version: int | None | Unset = UNSET
    queue: None | str | Unset = UNSET
    priority: int | None | Unset = UNSET
    run_at: datetime.datetime | None | Unset = UNSET
    max_attempts: int | None | Unset = UNSET
    timeout_ms: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        plugin = self.plugin

        input_ = self.input_

        version: int | None | Unset
        if isinstance(self.version, Unset):
            version = UNSET
        else:
            version = self.version

        queue: None | str | Unset
        if isinstance(self.queue, Unset):
            queue = UNSET
        else:
            queue = self.queue

        priority: int | None | Unset
        if isinstance(self.priority, Unset):
            priority = UNSET
        else:
            priority = self.priority

        run_at: None | str | Unset
        if isinstance(self.run_at, Unset):
            run_at = UNSET
        elif isinstance(self.run_at, datetime.datetime):
            run_at = self.run_at.isoformat()
        else:
            run_at = self.run_at

        max_attempts: int | None | Unset
        if isinstance(self.max_attempts, Unset):
            max_attempts = UNSET
        else:
            max_attempts = self.max_attempts

        timeout_ms: int | None | Unset
        if isinstance(self.timeout_ms, Unset):
            timeout_ms = UNSET
        else:
            timeout_ms = self.timeout_ms

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "plugin": plugin,
                "input": input_,
            }
        )
        if version is not UNSET:
            field_dict["version"] = version
        if queue is not UNSET:
            field_dict["queue"] = queue
        if priority is not UNSET:
            field_dict["priority"] = priority
        if run_at is not UNSET:
            field_dict["run_at"] = run_at
        if max_attempts is not UNSET:
            field_dict["max_attempts"] = max_attempts
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        plugin = d.pop("plugin")

        input_ = d.pop("input")

        def _parse_version(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        version = _parse_version(d.pop("version", UNSET))

        def _parse_queue(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        queue = _parse_queue(d.pop("queue", UNSET))

        def _parse_priority(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        priority = _parse_priority(d.pop("priority", UNSET))

        def _parse_run_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                run_at_type_0 = datetime.datetime.fromisoformat(data)

                return run_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        run_at = _parse_run_at(d.pop("run_at", UNSET))

        def _parse_max_attempts(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_attempts = _parse_max_attempts(d.pop("max_attempts", UNSET))

        def _parse_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_ms = _parse_timeout_ms(d.pop("timeout_ms", UNSET))

        create_job = cls(
            plugin=plugin,
            input_=input_,
            version=version,
            queue=queue,
            priority=priority,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout_ms=timeout_ms,
        )

        return create_job
