from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.http_settings import HttpSettings
    from ..models.update_plugin_config_type_0 import UpdatePluginConfigType0
    from ..models.upload_limits import UploadLimits


T = TypeVar("T", bound="UpdatePlugin")


@_attrs_define
class UpdatePlugin:
    """
    Attributes:
        limits (None | Unset | UploadLimits):
        config (None | Unset | UpdatePluginConfigType0): Replaces the whole config; values are write-only.
        http (HttpSettings | None | Unset):
    """

    limits: None | Unset | UploadLimits = UNSET
    config: None | Unset | UpdatePluginConfigType0 = UNSET
    http: HttpSettings | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.http_settings import HttpSettings
        from ..models.update_plugin_config_type_0 import UpdatePluginConfigType0
        from ..models.upload_limits import UploadLimits

        limits: dict[str, Any] | None | Unset
        if isinstance(self.limits, Unset):
            limits = UNSET
        elif isinstance(self.limits, UploadLimits):
            limits = self.limits.to_dict()
        else:
            limits = self.limits

        config: dict[str, Any] | None | Unset
        if isinstance(self.config, Unset):
            config = UNSET
        elif isinstance(self.config, UpdatePluginConfigType0):
            config = self.config.to_dict()
        else:
            config = self.config

        http: dict[str, Any] | None | Unset
        if isinstance(self.http, Unset):
            http = UNSET
        elif isinstance(self.http, HttpSettings):
            http = self.http.to_dict()
        else:
            http = self.http

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if limits is not UNSET:
            field_dict["limits"] = limits
        if config is not UNSET:
            field_dict["config"] = config
        if http is not UNSET:
            field_dict["http"] = http

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.http_settings import HttpSettings
        from ..models.update_plugin_config_type_0 import UpdatePluginConfigType0
        from ..models.upload_limits import UploadLimits

        d = dict(src_dict)

        def _parse_limits(data: object) -> None | Unset | UploadLimits:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                limits_type_0 = UploadLimits.from_dict(data)

                return limits_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UploadLimits, data)

        limits = _parse_limits(d.pop("limits", UNSET))

        def _parse_config(data: object) -> None | Unset | UpdatePluginConfigType0:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                config_type_0 = UpdatePluginConfigType0.from_dict(data)

                return config_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UpdatePluginConfigType0, data)

        config = _parse_config(d.pop("config", UNSET))

        def _parse_http(data: object) -> HttpSettings | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                http_type_0 = HttpSettings.from_dict(data)

                return http_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(HttpSettings | None | Unset, data)

        http = _parse_http(d.pop("http", UNSET))

        update_plugin = cls(
            limits=limits,
            config=config,
            http=http,
        )

        return update_plugin
