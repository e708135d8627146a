from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="AttemptLog")


@_attrs_define
class AttemptLog:
    """The captured guest log of one attempt.

    Attributes:
        attempt (int):
        log (str):
        truncated (bool): Whether the log was cut at the plugin's log limit.
        dropped_bytes (int):
    """

    attempt: int
    log: str
    truncated: bool
    dropped_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        attempt = self.attempt

        log = self.log

        truncated = self.truncated

        dropped_bytes = self.dropped_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
                "log": log,
                "truncated": truncated,
                "dropped_bytes": dropped_bytes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        attempt = d.pop("attempt")

        log = d.pop("log")

        truncated = d.pop("truncated")

        dropped_bytes = d.pop("dropped_bytes")

        attempt_log = cls(
            attempt=attempt,
            log=log,
            truncated=truncated,
            dropped_bytes=dropped_bytes,
        )

        attempt_log.additional_properties = d
        return attempt_log

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
