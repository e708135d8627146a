from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="SecretValue")


@_attrs_define
class SecretValue:
    """The body of `PUT /v1/secrets/{name}`.

    Attributes:
        value (str): The value (at most 8 KiB of text). Never returned.
    """

    value: str

    def to_dict(self) -> dict[str, Any]:
        value = self.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "value": value,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        value = d.pop("value")

        secret_value = cls(
            value=value,
        )

        return secret_value
