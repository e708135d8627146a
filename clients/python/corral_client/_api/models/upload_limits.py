from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="UploadLimits")


@_attrs_define
class UploadLimits:
    """Limits set at upload (query parameters); absent ones take the defaults,
    lowered to the tenant's quotas.

        Attributes:
            fuel (int | None | Unset):
            memory_mb (int | None | Unset):
            timeout_ms (int | None | Unset):
            max_attempts (int | None | Unset):
            http (None | str | Unset): Outbound HTTP settings as JSON (`{"allow": [...]}`, docs/http.md);
                a new version inherits the latest's when absent. Upload only.
    """

    fuel: int | None | Unset = UNSET
    memory_mb: int | None | Unset = UNSET
    timeout_ms: int | None | Unset = UNSET
    max_attempts: int | None | Unset = UNSET
    http: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        fuel: int | None | Unset
        if isinstance(self.fuel, Unset):
            fuel = UNSET
        else:
            fuel = self.fuel

        memory_mb: int | None | Unset
        if isinstance(self.memory_mb, Unset):
            memory_mb = UNSET
        else:
            memory_mb = self.memory_mb

        timeout_ms: int | None | Unset
        if isinstance(self.timeout_ms, Unset):
            timeout_ms = UNSET
        else:
            timeout_ms = self.timeout_ms

        max_attempts: int | None | Unset
        if isinstance(self.max_attempts, Unset):
            max_attempts = UNSET
        else:
            max_attempts = self.max_attempts

        http: None | str | Unset
        if isinstance(self.http, Unset):
            http = UNSET
        else:
            http = self.http

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if fuel is not UNSET:
            field_dict["fuel"] = fuel
        if memory_mb is not UNSET:
            field_dict["memory_mb"] = memory_mb
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms
        if max_attempts is not UNSET:
            field_dict["max_attempts"] = max_attempts
        if http is not UNSET:
            field_dict["http"] = http

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_fuel(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        fuel = _parse_fuel(d.pop("fuel", UNSET))

        def _parse_memory_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        memory_mb = _parse_memory_mb(d.pop("memory_mb", UNSET))

        def _parse_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_ms = _parse_timeout_ms(d.pop("timeout_ms", UNSET))

        def _parse_max_attempts(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_attempts = _parse_max_attempts(d.pop("max_attempts", UNSET))

        def _parse_http(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        http = _parse_http(d.pop("http", UNSET))

        upload_limits = cls(
            fuel=fuel,
            memory_mb=memory_mb,
            timeout_ms=timeout_ms,
            max_attempts=max_attempts,
            http=http,
        )

        return upload_limits
