from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Limits")


@_attrs_define
class Limits:
    """The limits of one attempt of one plugin.

    Attributes:
        fuel (int): Fuel units (roughly one per wasm instruction).
        memory_bytes (int): Bytes of linear memory, summed over every memory of the component.
        timeout_ms (int): Wall-clock milliseconds.
        result_bytes (int): Bytes of the JSON result.
        log_bytes (int): Bytes of captured log.
    """

    fuel: int
    memory_bytes: int
    timeout_ms: int
    result_bytes: int
    log_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        fuel = self.fuel

        memory_bytes = self.memory_bytes

        timeout_ms = self.timeout_ms

        result_bytes = self.result_bytes

        log_bytes = self.log_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "fuel": fuel,
                "memory_bytes": memory_bytes,
                "timeout_ms": timeout_ms,
                "result_bytes": result_bytes,
                "log_bytes": log_bytes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        fuel = d.pop("fuel")

        memory_bytes = d.pop("memory_bytes")

        timeout_ms = d.pop("timeout_ms")

        result_bytes = d.pop("result_bytes")

        log_bytes = d.pop("log_bytes")

        limits = cls(
            fuel=fuel,
            memory_bytes=memory_bytes,
            timeout_ms=timeout_ms,
            result_bytes=result_bytes,
            log_bytes=log_bytes,
        )

        limits.additional_properties = d
        return limits

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
