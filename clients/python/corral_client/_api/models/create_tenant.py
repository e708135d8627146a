from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.quota_patch import QuotaPatch


T = TypeVar("T", bound="CreateTenant")


@_attrs_define
class CreateTenant:
    """
    Attributes:
        id (str): 1-63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit.
        name (None | str | Unset): Defaults to the id.
        quotas (QuotaPatch | Unset): Quotas to set; absent ones keep their value (or the default, on creation).
    """

    id: str
    name: None | str | Unset = UNSET
    quotas: QuotaPatch | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        quotas: dict[str, Any] | Unset = UNSET
        if not isinstance(self.quotas, Unset):
            quotas = self.quotas.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
            }
        )
        if name is not UNSET:
            field_dict["name"] = name
        if quotas is not UNSET:
            field_dict["quotas"] = quotas

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.quota_patch import QuotaPatch

        d = dict(src_dict)
        id = d.pop("id")

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        _quotas = d.pop("quotas", UNSET)
        quotas: QuotaPatch | Unset
        if isinstance(_quotas, Unset):
            quotas = UNSET
        else:
            quotas = QuotaPatch.from_dict(_quotas)

        create_tenant = cls(
            id=id,
            name=name,
            quotas=quotas,
        )

        return create_tenant
