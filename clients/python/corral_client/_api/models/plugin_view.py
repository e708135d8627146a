from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.http_settings import HttpSettings
    from ..models.limits import Limits


T = TypeVar("T", bound="PluginView")


@_attrs_define
class PluginView:
    """A plugin version in responses. Its config is write-only and never shown.

    Attributes:
        name (str):
        version (int):
        digest (str):
        size (int):
        limits (Limits): The limits of one attempt of one plugin.
        max_attempts (int):
        config_keys (list[str]): The names of its config settings; their values are never returned.
        http (HttpSettings): A plugin's outbound settings, stored with it (`http` in the API).
        created_at (datetime.datetime):
    """

    name: str
    version: int
    digest: str
    size: int
    limits: Limits
    max_attempts: int
    config_keys: list[str]
    http: HttpSettings
    created_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        version = self.version

        digest = self.digest

        size = self.size

        limits = self.limits.to_dict()

        max_attempts = self.max_attempts

        config_keys = self.config_keys

        http = self.http.to_dict()

        created_at = self.created_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
                "version": version,
                "digest": digest,
                "size": size,
                "limits": limits,
                "max_attempts": max_attempts,
                "config_keys": config_keys,
                "http": http,
                "created_at": created_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.http_settings import HttpSettings
        from ..models.limits import Limits

        d = dict(src_dict)
        name = d.pop("name")

        version = d.pop("version")

        digest = d.pop("digest")

        size = d.pop("size")

        limits = Limits.from_dict(d.pop("limits"))

        max_attempts = d.pop("max_attempts")

        config_keys = cast(list[str], d.pop("config_keys"))

        http = HttpSettings.from_dict(d.pop("http"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        plugin_view = cls(
            name=name,
            version=version,
            digest=digest,
            size=size,
            limits=limits,
            max_attempts=max_attempts,
            config_keys=config_keys,
            http=http,
            created_at=created_at,
        )

        plugin_view.additional_properties = d
        return plugin_view

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
