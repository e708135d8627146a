from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="AllowEntryType1")


@_attrs_define
class AllowEntryType1:
    """
    Attributes:
        url (str):
        methods (list[str] | Unset): Methods allowed (upper case); all when empty.
        secrets (list[str] | Unset): Tenant secrets this destination may receive, by name.
    """

    url: str
    methods: list[str] | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        url = self.url

        methods: list[str] | Unset = UNSET
        if not isinstance(self.methods, Unset):
            methods = self.methods

        secrets: list[str] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "url": url,
            }
        )
        if methods is not UNSET:
            field_dict["methods"] = methods
        if secrets is not UNSET:
            field_dict["secrets"] = secrets

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        url = d.pop("url")

        methods = cast(list[str], d.pop("methods", UNSET))

        secrets = cast(list[str], d.pop("secrets", UNSET))

        allow_entry_type_1 = cls(
            url=url,
            methods=methods,
            secrets=secrets,
        )

        allow_entry_type_1.additional_properties = d
        return allow_entry_type_1

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
