from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.outcome_kind import OutcomeKind
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.http_calls import HttpCalls


T = TypeVar("T", bound="Attempt")


@_attrs_define
class Attempt:
    """One attempt in the timeline (its log is under `/logs`).

    Attributes:
        attempt (int):
        outcome (OutcomeKind): The kind of outcome of one attempt (PLUGIN.md, "Outcomes of an attempt").
        started_at (datetime.datetime):
        finished_at (datetime.datetime):
        duration_ms (int):
        fuel_consumed (int):
        peak_memory_bytes (int):
        host_id (str):
        message (None | str | Unset):
        http (HttpCalls | None | Unset):
    """

    attempt: int
    outcome: OutcomeKind
    started_at: datetime.datetime
    finished_at: datetime.datetime
    duration_ms: int
    fuel_consumed: int
    peak_memory_bytes: int
    host_id: str
    message: None | str | Unset = UNSET
    http: HttpCalls | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.http_calls import HttpCalls

        attempt = self.attempt

        outcome = self.outcome.value

        started_at = self.started_at.isoformat()

        finished_at = self.finished_at.isoformat()

        duration_ms = self.duration_ms

        fuel_consumed = self.fuel_consumed

        peak_memory_bytes = self.peak_memory_bytes

        host_id = self.host_id

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        http: dict[str, Any] | None | Unset
        if isinstance(self.http, Unset):
            http = UNSET
        elif isinstance(self.http, HttpCalls):
            http = self.http.to_dict()
        else:
            http = self.http

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "attempt": attempt,
                "outcome": outcome,
                "started_at": started_at,
                "finished_at": finished_at,
                "duration_ms": duration_ms,
                "fuel_consumed": fuel_consumed,
                "peak_memory_bytes": peak_memory_bytes,
                "host_id": host_id,
            }
        )
        if message is not UNSET:
            field_dict["message"] = message
        if http is not UNSET:
            field_dict["http"] = http

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.http_calls import HttpCalls

        d = dict(src_dict)
        attempt = d.pop("attempt")

        outcome = OutcomeKind(d.pop("outcome"))

        started_at = datetime.datetime.fromisoformat(d.pop("started_at"))

        finished_at = datetime.datetime.fromisoformat(d.pop("finished_at"))

        duration_ms = d.pop("duration_ms")

        fuel_consumed = d.pop("fuel_consumed")

        peak_memory_bytes = d.pop("peak_memory_bytes")

        host_id = d.pop("host_id")

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        def _parse_http(data: object) -> HttpCalls | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                http_type_0 = HttpCalls.from_dict(data)

                return http_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(HttpCalls | None | Unset, data)

        http = _parse_http(d.pop("http", UNSET))

        attempt = cls(
            attempt=attempt,
            outcome=outcome,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=duration_ms,
            fuel_consumed=fuel_consumed,
            peak_memory_bytes=peak_memory_bytes,
            host_id=host_id,
            message=message,
            http=http,
        )

        attempt.additional_properties = d
        return attempt

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
