from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.job_selector import JobSelector


T = TypeVar("T", bound="BulkRequest")


@_attrs_define
class BulkRequest:
    """A bulk replay or cancel (`POST /v1/jobs/replay`, `POST /v1/jobs/cancel`).

    Attributes:
        filter_ (JobSelector | Unset): Which jobs a bulk replay or cancel selects (every field narrows it).
        dry_run (bool | Unset): Count what the filter matches; change nothing.
        limit (int | None | Unset): Jobs to act on in this request, 1 to 1000 (default 1000).
        cursor (None | str | Unset): `next_cursor` of the previous request: continue below it.
    """

    filter_: JobSelector | Unset = UNSET
    dry_run: bool | Unset = UNSET
    limit: int | None | Unset = UNSET
    cursor: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        filter_: dict[str, Any] | Unset = UNSET
        if not isinstance(self.filter_, Unset):
            filter_ = self.filter_.to_dict()

        dry_run = self.dry_run

        limit: int | None | Unset
        if isinstance(self.limit, Unset):
            limit = UNSET
        else:
            limit = self.limit

        cursor: None | str | Unset
        if isinstance(self.cursor, Unset):
            cursor = UNSET
        else:
            cursor = self.cursor

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if filter_ is not UNSET:
            field_dict["filter"] = filter_
        if dry_run is not UNSET:
            field_dict["dry_run"] = dry_run
        if limit is not UNSET:
            field_dict["limit"] = limit
        if cursor is not UNSET:
            field_dict["cursor"] = cursor

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.job_selector import JobSelector

        d = dict(src_dict)
        _filter_ = d.pop("filter", UNSET)
        filter_: JobSelector | Unset
        if isinstance(_filter_, Unset):
            filter_ = UNSET
        else:
            filter_ = JobSelector.from_dict(_filter_)

        dry_run = d.pop("dry_run", UNSET)

        def _parse_limit(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        limit = _parse_limit(d.pop("limit", UNSET))

        def _parse_cursor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cursor = _parse_cursor(d.pop("cursor", UNSET))

        bulk_request = cls(
            filter_=filter_,
            dry_run=dry_run,
            limit=limit,
            cursor=cursor,
        )

        return bulk_request
