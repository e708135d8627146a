from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..models.on_failure import OnFailure
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.step_spec_input_type_0 import StepSpecInputType0


T = TypeVar("T", bound="StepSpec")


@_attrs_define
class StepSpec:
    """One step of a workflow.

    Attributes:
        name (str): Unique in the workflow: 1-63 characters of a-z, 0-9, `_` and `-`.
        plugin (str): The plugin the step's job runs.
        version (int | None | Unset): The plugin version; the latest when the run starts, when none.
        input_ (None | StepSpecInputType0 | Unset): The job's input. When none: the element (for `for_each`), else the
            run's input.
        depends_on (list[str] | Unset): Steps that must finish before this one starts.
        on_failure (OnFailure | Unset): What a failed step does to its run.
        when (None | str | Unset): A JMESPath expression over `{input, steps}`: the step runs when it is
            truthy and is skipped otherwise.
        for_each (None | str | Unset): A JMESPath expression over `{input, steps}` giving an array: one job
            per element; the step's result is the array of their results.
        max_parallel (int | None | Unset): With `for_each`: element jobs running at once, at most.
        queue (None | str | Unset): The queue of the step's jobs.
        priority (int | None | Unset): The priority of the step's jobs.
        max_attempts (int | None | Unset): Overrides the plugin's.
        timeout_ms (int | None | Unset): Overrides the plugin's wall-clock limit.
    """

    name: str
    plugin: str
    version: int | None | Unset = UNSET
    input_: None | StepSpecInputType0 | Unset = UNSET
    depends_on: list[str] | Unset = UNSET
    on_failure: OnFailure | Unset = UNSET
    when: None | str | Unset = UNSET
    for_each: None | str | Unset = UNSET
    max_parallel: int | None | Unset = UNSET
    queue: None | str | Unset = UNSET
    priority: int | None | Unset = UNSET
    max_attempts: int | None | Unset = UNSET
    timeout_ms: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.step_spec_input_type_0 import StepSpecInputType0

        name = self.name

        plugin = self.plugin

        version: int | None | Unset
        if isinstance(self.version, Unset):
            version = UNSET
        else:
            version = self.version

        input_: dict[str, Any] | None | Unset
        if isinstance(self.input_, Unset):
            input_ = UNSET
        elif isinstance(self.input_, StepSpecInputType0):
            input_ = self.input_.to_dict()
        else:
            input_ = self.input_

        depends_on: list[str] | Unset = UNSET
        if not isinstance(self.depends_on, Unset):
            depends_on = self.depends_on

        on_failure: str | Unset = UNSET
        if not isinstance(self.on_failure, Unset):
            on_failure = self.on_failure.value

        when: None | str | Unset
        if isinstance(self.when, Unset):
            when = UNSET
        else:
            when = self.when

        for_each: None | str | Unset
        if isinstance(self.for_each, Unset):
            for_each = UNSET
        else:
            for_each = self.for_each

        max_parallel: int | None | Unset
        if isinstance(self.max_parallel, Unset):
            max_parallel = UNSET
        else:
            max_parallel = self.max_parallel

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
                "name": name,
                "plugin": plugin,
            }
        )
        if version is not UNSET:
            field_dict["version"] = version
        if input_ is not UNSET:
            field_dict["input"] = input_
        if depends_on is not UNSET:
            field_dict["depends_on"] = depends_on
        if on_failure is not UNSET:
            field_dict["on_failure"] = on_failure
        if when is not UNSET:
            field_dict["when"] = when
        if for_each is not UNSET:
            field_dict["for_each"] = for_each
        if max_parallel is not UNSET:
            field_dict["max_parallel"] = max_parallel
        if queue is not UNSET:
            field_dict["queue"] = queue
        if priority is not UNSET:
            field_dict["priority"] = priority
        if max_attempts is not UNSET:
            field_dict["max_attempts"] = max_attempts
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.step_spec_input_type_0 import StepSpecInputType0

        d = dict(src_dict)
        name = d.pop("name")

        plugin = d.pop("plugin")

        def _parse_version(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        version = _parse_version(d.pop("version", UNSET))

        def _parse_input_(data: object) -> None | StepSpecInputType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                input_type_0 = StepSpecInputType0.from_dict(data)

                return input_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | StepSpecInputType0 | Unset, data)

        input_ = _parse_input_(d.pop("input", UNSET))

        depends_on = cast(list[str], d.pop("depends_on", UNSET))

        _on_failure = d.pop("on_failure", UNSET)
        on_failure: OnFailure | Unset
        if isinstance(_on_failure, Unset):
            on_failure = UNSET
        else:
            on_failure = OnFailure(_on_failure)

        def _parse_when(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        when = _parse_when(d.pop("when", UNSET))

        def _parse_for_each(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        for_each = _parse_for_each(d.pop("for_each", UNSET))

        def _parse_max_parallel(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_parallel = _parse_max_parallel(d.pop("max_parallel", UNSET))

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

        step_spec = cls(
            name=name,
            plugin=plugin,
            version=version,
            input_=input_,
            depends_on=depends_on,
            on_failure=on_failure,
            when=when,
            for_each=for_each,
            max_parallel=max_parallel,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            timeout_ms=timeout_ms,
        )

        return step_spec
