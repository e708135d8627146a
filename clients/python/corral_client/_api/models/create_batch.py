from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.create_job import CreateJob


T = TypeVar("T", bound="CreateBatch")


@_attrs_define
class CreateBatch:
    """
    Attributes:
        jobs (list[CreateJob]): 1 to 1000 jobs, enqueued all or nothing.
    """

    jobs: list[CreateJob]

    def to_dict(self) -> dict[str, Any]:
        jobs = []
        for jobs_item_data in self.jobs:
            jobs_item = jobs_item_data.to_dict()
            jobs.append(jobs_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "jobs": jobs,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.create_job import CreateJob

        d = dict(src_dict)
        jobs = []
        _jobs = d.pop("jobs")
        for jobs_item_data in _jobs:
            jobs_item = CreateJob.from_dict(jobs_item_data)

            jobs.append(jobs_item)

        create_batch = cls(
            jobs=jobs,
        )

        return create_batch
