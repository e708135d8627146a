from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.call_result import CallResult
from ..types import UNSET, Unset

T = TypeVar("T", bound="HttpCall")


@_attrs_define
class HttpCall:
    """One request an attempt made, as recorded with it.

    Attributes:
        method (str):
        scheme (str):
        host (str):
        port (int):
        path (str): Without the query string (it may carry what the plugin's owner
            would not want stored).
        result (CallResult): How a recorded request ended.
        bytes_sent (int):
        bytes_received (int):
        duration_ms (int): From the request to its response's headers (or its failure).
        status (int | None | Unset):
        error (None | str | Unset): Why it failed: `denied: …`, `timeout: …`, `too large: …`, `connect: …`.
    """

    method: str
    scheme: str
    host: str
    port: int
    path: str
    result: CallResult
    bytes_sent: int
    bytes_received: int
    duration_ms: int
    status: int | None | Unset = UNSET
    error: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        method = self.method

        scheme = self.scheme

        host = self.host

        port = self.port

        path = self.path

        result = self.result.value

        bytes_sent = self.bytes_sent

        bytes_received = self.bytes_received

        duration_ms = self.duration_ms

        status: int | None | Unset
        if isinstance(self.status, Unset):
            status = UNSET
        else:
            status = self.status

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "method": method,
                "scheme": scheme,
                "host": host,
                "port": port,
                "path": path,
                "result": result,
                "bytes_sent": bytes_sent,
                "bytes_received": bytes_received,
                "duration_ms": duration_ms,
            }
        )
        if status is not UNSET:
            field_dict["status"] = status
        if error is not UNSET:
            field_dict["error"] = error

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        method = d.pop("method")

        scheme = d.pop("scheme")

        host = d.pop("host")

        port = d.pop("port")

        path = d.pop("path")

        result = CallResult(d.pop("result"))

        bytes_sent = d.pop("bytes_sent")

        bytes_received = d.pop("bytes_received")

        duration_ms = d.pop("duration_ms")

        def _parse_status(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        status = _parse_status(d.pop("status", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        http_call = cls(
            method=method,
            scheme=scheme,
            host=host,
            port=port,
            path=path,
            result=result,
            bytes_sent=bytes_sent,
            bytes_received=bytes_received,
            duration_ms=duration_ms,
            status=status,
            error=error,
        )

        http_call.additional_properties = d
        return http_call

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
