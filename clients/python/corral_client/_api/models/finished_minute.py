from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="FinishedMinute")


@_attrs_define
class FinishedMinute:
    """The jobs that finished in one minute.

    Attributes:
        start (datetime.datetime):
        completed (int):
        dead (int):
        cancelled (int):
    """

    start: datetime.datetime
    completed: int
    dead: int
    cancelled: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        start = self.start.isoformat()

        completed = self.completed

        dead = self.dead

        cancelled = self.cancelled

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "start": start,
                "completed": completed,
                "dead": dead,
                "cancelled": cancelled,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        start = datetime.datetime.fromisoformat(d.pop("start"))

        completed = d.pop("completed")

        dead = d.pop("dead")

        cancelled = d.pop("cancelled")

        finished_minute = cls(
            start=start,
            completed=completed,
            dead=dead,
            cancelled=cancelled,
        )

        finished_minute.additional_properties = d
        return finished_minute

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
