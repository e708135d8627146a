from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="DeadLetterGroup")


@_attrs_define
class DeadLetterGroup:
    """
    Attributes:
        plugin (str):
        error (str): The error's first 200 characters.
        count (int):
        newest_at (datetime.datetime):
    """

    plugin: str
    error: str
    count: int
    newest_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plugin = self.plugin

        error = self.error

        count = self.count

        newest_at = self.newest_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "plugin": plugin,
                "error": error,
                "count": count,
                "newest_at": newest_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        plugin = d.pop("plugin")

        error = d.pop("error")

        count = d.pop("count")

        newest_at = datetime.datetime.fromisoformat(d.pop("newest_at"))

        dead_letter_group = cls(
            plugin=plugin,
            error=error,
            count=count,
            newest_at=newest_at,
        )

        dead_letter_group.additional_properties = d
        return dead_letter_group

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
