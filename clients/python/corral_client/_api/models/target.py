from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.target_input import TargetInput


T = TypeVar("T", bound="Target")


@_attrs_define
class Target:
    """What a tick starts: a job of a plugin, or a run of a workflow.

    Attributes:
        plugin (None | str | Unset): A plugin: each tick enqueues a job of it.
        workflow (None | str | Unset): A workflow: each tick starts a run of it.
        version (int | None | Unset): The version to use; the latest at each tick when absent.
        input_ (TargetInput | Unset): The job's (or run's) input; `{}` when absent.
    """

    plugin: None | str | Unset = UNSET
    workflow: None | str | Unset = UNSET
    version: int | None | Unset = UNSET
    input_: TargetInput | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        plugin: None | str | Unset
        if isinstance(self.plugin, Unset):
            plugin = UNSET
        else:
            plugin = self.plugin

        workflow: None | str | Unset
        if isinstance(self.workflow, Unset):
            workflow = UNSET
        else:
            workflow = self.workflow

        version: int | None | Unset
        if isinstance(self.version, Unset):
            version = UNSET
        else:
            version = self.version

        input_: dict[str, Any] | Unset = UNSET
        if not isinstance(self.input_, Unset):
            input_ = self.input_.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if plugin is not UNSET:
            field_dict["plugin"] = plugin
        if workflow is not UNSET:
            field_dict["workflow"] = workflow
        if version is not UNSET:
            field_dict["version"] = version
        if input_ is not UNSET:
            field_dict["input"] = input_

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.target_input import TargetInput

        d = dict(src_dict)

        def _parse_plugin(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        plugin = _parse_plugin(d.pop("plugin", UNSET))

        def _parse_workflow(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workflow = _parse_workflow(d.pop("workflow", UNSET))

        def _parse_version(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        version = _parse_version(d.pop("version", UNSET))

        _input_ = d.pop("input", UNSET)
        input_: TargetInput | Unset
        if isinstance(_input_, Unset):
            input_ = UNSET
        else:
            input_ = TargetInput.from_dict(_input_)

        target = cls(
            plugin=plugin,
            workflow=workflow,
            version=version,
            input_=input_,
        )

        return target
