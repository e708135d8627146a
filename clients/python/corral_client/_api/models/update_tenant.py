from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.quota_patch import QuotaPatch


T = TypeVar("T", bound="UpdateTenant")


@_attrs_define
class UpdateTenant:
    """
    Attributes:
        quotas (QuotaPatch): Quotas to set; absent ones keep their value (or the default, on creation).
    """

    quotas: QuotaPatch

    def to_dict(self) -> dict[str, Any]:
        quotas = self.quotas.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "quotas": quotas,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.quota_patch import QuotaPatch

        d = dict(src_dict)
        quotas = QuotaPatch.from_dict(d.pop("quotas"))

        update_tenant = cls(
            quotas=quotas,
        )

        return update_tenant
