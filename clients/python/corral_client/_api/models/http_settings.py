from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.allow_entry_type_1 import AllowEntryType1


T = TypeVar("T", bound="HttpSettings")


@_attrs_define
class HttpSettings:
    """A plugin's outbound settings, stored with it (`http` in the API).

    Attributes:
        allow (list[AllowEntryType1 | str] | Unset): Destinations its requests may reach; empty denies every request.
        max_requests (int | None | Unset): Requests per attempt (default 100, at most 1000).
        max_concurrent (int | None | Unset): Requests in flight at once (default 4, at most 16).
        max_request_bytes (int | None | Unset): Bytes of a request body (default 1 MiB, at most 16 MiB).
        max_response_bytes (int | None | Unset): Bytes of a response body (default 8 MiB, at most 64 MiB).
        connect_timeout_ms (int | None | Unset): Connect (DNS, TCP and TLS) timeout, ms (default 10 s, at most 30 s).
        first_byte_timeout_ms (int | None | Unset): Wait for the first byte of a response, ms (default 30 s, at most 120
            s).
    """

    allow: list[AllowEntryType1 | str] | Unset = UNSET
    max_requests: int | None | Unset = UNSET
    max_concurrent: int | None | Unset = UNSET
    max_request_bytes: int | None | Unset = UNSET
    max_response_bytes: int | None | Unset = UNSET
    connect_timeout_ms: int | None | Unset = UNSET
    first_byte_timeout_ms: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.allow_entry_type_1 import AllowEntryType1

        allow: list[dict[str, Any] | str] | Unset = UNSET
        if not isinstance(self.allow, Unset):
            allow = []
            for allow_item_data in self.allow:
                allow_item: dict[str, Any] | str
                if isinstance(allow_item_data, AllowEntryType1):
                    allow_item = allow_item_data.to_dict()
                else:
                    allow_item = allow_item_data
                allow.append(allow_item)

        max_requests: int | None | Unset
        if isinstance(self.max_requests, Unset):
            max_requests = UNSET
        else:
            max_requests = self.max_requests

        max_concurrent: int | None | Unset
        if isinstance(self.max_concurrent, Unset):
            max_concurrent = UNSET
        else:
            max_concurrent = self.max_concurrent

        max_request_bytes: int | None | Unset
        if isinstance(self.max_request_bytes, Unset):
            max_request_bytes = UNSET
        else:
            max_request_bytes = self.max_request_bytes

        max_response_bytes: int | None | Unset
        if isinstance(self.max_response_bytes, Unset):
            max_response_bytes = UNSET
        else:
            max_response_bytes = self.max_response_bytes

        connect_timeout_ms: int | None | Unset
        if isinstance(self.connect_timeout_ms, Unset):
            connect_timeout_ms = UNSET
        else:
            connect_timeout_ms = self.connect_timeout_ms

        first_byte_timeout_ms: int | None | Unset
        if isinstance(self.first_byte_timeout_ms, Unset):
            first_byte_timeout_ms = UNSET
        else:
            first_byte_timeout_ms = self.first_byte_timeout_ms

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if allow is not UNSET:
            field_dict["allow"] = allow
        if max_requests is not UNSET:
            field_dict["max_requests"] = max_requests
        if max_concurrent is not UNSET:
            field_dict["max_concurrent"] = max_concurrent
        if max_request_bytes is not UNSET:
            field_dict["max_request_bytes"] = max_request_bytes
        if max_response_bytes is not UNSET:
            field_dict["max_response_bytes"] = max_response_bytes
        if connect_timeout_ms is not UNSET:
            field_dict["connect_timeout_ms"] = connect_timeout_ms
        if first_byte_timeout_ms is not UNSET:
            field_dict["first_byte_timeout_ms"] = first_byte_timeout_ms

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.allow_entry_type_1 import AllowEntryType1

        d = dict(src_dict)
        _allow = d.pop("allow", UNSET)
        allow: list[AllowEntryType1 | str] | Unset = UNSET
        if _allow is not UNSET:
            allow = []
            for allow_item_data in _allow:

                def _parse_allow_item(data: object) -> AllowEntryType1 | str:
                    try:
                        if not isinstance(data, dict):
                            raise TypeError()
                        componentsschemas_allow_entry_type_1 = (
                            AllowEntryType1.from_dict(data)
                        )

                        return componentsschemas_allow_entry_type_1
                    except (TypeError, ValueError, AttributeError, KeyError):
                        pass
                    return cast(AllowEntryType1 | str, data)

                allow_item = _parse_allow_item(allow_item_data)

                allow.append(allow_item)

        def _parse_max_requests(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_requests = _parse_max_requests(d.pop("max_requests", UNSET))

        def _parse_max_concurrent(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_concurrent = _parse_max_concurrent(d.pop("max_concurrent", UNSET))

        def _parse_max_request_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_request_bytes = _parse_max_request_bytes(d.pop("max_request_bytes", UNSET))

        def _parse_max_response_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_response_bytes = _parse_max_response_bytes(
            d.pop("max_response_bytes", UNSET)
        )

        def _parse_connect_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        connect_timeout_ms = _parse_connect_timeout_ms(
            d.pop("connect_timeout_ms", UNSET)
        )

        def _parse_first_byte_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        first_byte_timeout_ms = _parse_first_byte_timeout_ms(
            d.pop("first_byte_timeout_ms", UNSET)
        )

        http_settings = cls(
            allow=allow,
            max_requests=max_requests,
            max_concurrent=max_concurrent,
            max_request_bytes=max_request_bytes,
            max_response_bytes=max_response_bytes,
            connect_timeout_ms=connect_timeout_ms,
            first_byte_timeout_ms=first_byte_timeout_ms,
        )

        return http_settings
