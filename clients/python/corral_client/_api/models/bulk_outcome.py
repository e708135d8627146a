from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast
from uuid import UUID

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BulkOutcome")


@_attrs_define
class BulkOutcome:
    """What a bulk replay or cancel did, or on a dry run would do.

    Attributes:
        jobs (list[UUID]): The jobs this request replayed or cancelled (none on a dry run).
        matched (int | None | Unset): Dry run: how many jobs the filter matches (examining at most the
            newest 100,000 of the range; see `matched_is_lower_bound`).
        matched_is_lower_bound (bool | Unset): The count stopped at its bound: at least `matched` jobs match.
        replays (list[UUID] | Unset): Replay: the new jobs, in the order of `jobs`.
        next_cursor (None | str | Unset): More jobs may match: send the same request with this `cursor`.
    """

    jobs: list[UUID]
    matched: int | None | Unset = UNSET
    matched_is_lower_bound: bool | Unset = UNSET
    replays: list[UUID] | Unset = UNSET
    next_cursor: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        jobs = []
        for jobs_item_data in self.jobs:
            jobs_item = str(jobs_item_data)
            jobs.append(jobs_item)

        matched: int | None | Unset
        if isinstance(self.matched, Unset):
            matched = UNSET
        else:
            matched = self.matched

        matched_is_lower_bound = self.matched_is_lower_bound

        replays: list[str] | Unset = UNSET
        if not isinstance(self.replays, Unset):
            replays = []
            for replays_item_data in self.replays:
                replays_item = str(replays_item_data)
                replays.append(replays_item)

        next_cursor: None | str | Unset
        if isinstance(self.next_cursor, Unset):
            next_cursor = UNSET
        else:
            next_cursor = self.next_cursor

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "jobs": jobs,
            }
        )
        if matched is not UNSET:
            field_dict["matched"] = matched
        if matched_is_lower_bound is not UNSET:
            field_dict["matched_is_lower_bound"] = matched_is_lower_bound
        if replays is not UNSET:
            field_dict["replays"] = replays
        if next_cursor is not UNSET:
            field_dict["next_cursor"] = next_cursor

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        jobs = []
        _jobs = d.pop("jobs")
        for jobs_item_data in _jobs:
            jobs_item = UUID(jobs_item_data)

            jobs.append(jobs_item)

        def _parse_matched(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        matched = _parse_matched(d.pop("matched", UNSET))

        matched_is_lower_bound = d.pop("matched_is_lower_bound", UNSET)

        _replays = d.pop("replays", UNSET)
        replays: list[UUID] | Unset = UNSET
        if _replays is not UNSET:
            replays = []
            for replays_item_data in _replays:
                replays_item = UUID(replays_item_data)

                replays.append(replays_item)

        def _parse_next_cursor(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        next_cursor = _parse_next_cursor(d.pop("next_cursor", UNSET))

        bulk_outcome = cls(
            jobs=jobs,
            matched=matched,
            matched_is_lower_bound=matched_is_lower_bound,
            replays=replays,
            next_cursor=next_cursor,
        )

        bulk_outcome.additional_properties = d
        return bulk_outcome

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
