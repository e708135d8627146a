from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.step_spec import StepSpec


T = TypeVar("T", bound="WorkflowSpec")


@_attrs_define
class WorkflowSpec:
    """A workflow: a DAG of steps, each a job of a plugin.

    Attributes:
        steps (list[StepSpec]): The steps, in any order (dependencies decide when each runs).
    """

    steps: list[StepSpec]

    def to_dict(self) -> dict[str, Any]:
        steps = []
        for steps_item_data in self.steps:
            steps_item = steps_item_data.to_dict()
            steps.append(steps_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "steps": steps,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.step_spec import StepSpec

        d = dict(src_dict)
        steps = []
        _steps = d.pop("steps")
        for steps_item_data in _steps:
            steps_item = StepSpec.from_dict(steps_item_data)

            steps.append(steps_item)

        workflow_spec = cls(
            steps=steps,
        )

        return workflow_spec
