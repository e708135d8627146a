from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="QuotaPatch")


@_attrs_define
class QuotaPatch:
    """Quotas to set; absent ones keep their value (or the default, on creation).

    Attributes:
        max_concurrency (int | None | Unset):
        max_fuel_per_attempt (int | None | Unset):
        max_memory_mb (int | None | Unset):
        max_timeout_ms (int | None | Unset):
        max_plugin_bytes (int | None | Unset):
        max_queued_jobs (int | None | Unset):
        enqueue_per_minute (int | None | Unset):
        max_stored_plugin_bytes (int | None | Unset):
        max_schedules (int | None | Unset):
        max_workflows (int | None | Unset):
        max_workflow_versions (int | None | Unset):
        max_http_requests_per_attempt (int | None | Unset):
        max_http_response_bytes (int | None | Unset):
    """

    max_concurrency: int | None | Unset = UNSET
    max_fuel_per_attempt: int | None | Unset = UNSET
    max_memory_mb: int | None | Unset = UNSET
    max_timeout_ms: int | None | Unset = UNSET
    max_plugin_bytes: int | None | Unset = UNSET
    max_queued_jobs: int | None | Unset = UNSET
    enqueue_per_minute: int | None | Unset = UNSET
    max_stored_plugin_bytes: int | None | Unset = UNSET
    max_schedules: int | None | Unset = UNSET
    max_workflows: int | None | Unset = UNSET
    max_workflow_versions: int | None | Unset = UNSET
    max_http_requests_per_attempt: int | None | Unset = UNSET
    max_http_response_bytes: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        max_concurrency: int | None | Unset
        if isinstance(self.max_concurrency, Unset):
            max_concurrency = UNSET
        else:
            max_concurrency = self.max_concurrency

        max_fuel_per_attempt: int | None | Unset
        if isinstance(self.max_fuel_per_attempt, Unset):
            max_fuel_per_attempt = UNSET
        else:
            max_fuel_per_attempt = self.max_fuel_per_attempt

        max_memory_mb: int | None | Unset
        if isinstance(self.max_memory_mb, Unset):
            max_memory_mb = UNSET
        else:
            max_memory_mb = self.max_memory_mb

        max_timeout_ms: int | None | Unset
        if isinstance(self.max_timeout_ms, Unset):
            max_timeout_ms = UNSET
        else:
            max_timeout_ms = self.max_timeout_ms

        max_plugin_bytes: int | None | Unset
        if isinstance(self.max_plugin_bytes, Unset):
            max_plugin_bytes = UNSET
        else:
            max_plugin_bytes = self.max_plugin_bytes

        max_queued_jobs: int | None | Unset
        if isinstance(self.max_queued_jobs, Unset):
            max_queued_jobs = UNSET
        else:
            max_queued_jobs = self.max_queued_jobs

        enqueue_per_minute: int | None | Unset
        if isinstance(self.enqueue_per_minute, Unset):
            enqueue_per_minute = UNSET
        else:
            enqueue_per_minute = self.enqueue_per_minute

        max_stored_plugin_bytes: int | None | Unset
        if isinstance(self.max_stored_plugin_bytes, Unset):
            max_stored_plugin_bytes = UNSET
        else:
            max_stored_plugin_bytes = self.max_stored_plugin_bytes

        max_schedules: int | None | Unset
        if isinstance(self.max_schedules, Unset):
            max_schedules = UNSET
        else:
            max_schedules = self.max_schedules

        max_workflows: int | None | Unset
        if isinstance(self.max_workflows, Unset):
            max_workflows = UNSET
        else:
            max_workflows = self.max_workflows

        max_workflow_versions: int | None | Unset
        if isinstance(self.max_workflow_versions, Unset):
            max_workflow_versions = UNSET
        else:
            max_workflow_versions = self.max_workflow_versions

        max_http_requests_per_attempt: int | None | Unset
        if isinstance(self.max_http_requests_per_attempt, Unset):
            max_http_requests_per_attempt = UNSET
        else:
            max_http_requests_per_attempt = self.max_http_requests_per_attempt

        max_http_response_bytes: int | None | Unset
        if isinstance(self.max_http_response_bytes, Unset):
            max_http_response_bytes = UNSET
        else:
            max_http_response_bytes = self.max_http_response_bytes

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if max_concurrency is not UNSET:
            field_dict["max_concurrency"] = max_concurrency
        if max_fuel_per_attempt is not UNSET:
            field_dict["max_fuel_per_attempt"] = max_fuel_per_attempt
        if max_memory_mb is not UNSET:
            field_dict["max_memory_mb"] = max_memory_mb
        if max_timeout_ms is not UNSET:
            field_dict["max_timeout_ms"] = max_timeout_ms
        if max_plugin_bytes is not UNSET:
            field_dict["max_plugin_bytes"] = max_plugin_bytes
        if max_queued_jobs is not UNSET:
            field_dict["max_queued_jobs"] = max_queued_jobs
        if enqueue_per_minute is not UNSET:
            field_dict["enqueue_per_minute"] = enqueue_per_minute
        if max_stored_plugin_bytes is not UNSET:
            field_dict["max_stored_plugin_bytes"] = max_stored_plugin_bytes
        if max_schedules is not UNSET:
            field_dict["max_schedules"] = max_schedules
        if max_workflows is not UNSET:
            field_dict["max_workflows"] = max_workflows
        if max_workflow_versions is not UNSET:
            field_dict["max_workflow_versions"] = max_workflow_versions
        if max_http_requests_per_attempt is not UNSET:
            field_dict["max_http_requests_per_attempt"] = max_http_requests_per_attempt
        if max_http_response_bytes is not UNSET:
            field_dict["max_http_response_bytes"] = max_http_response_bytes

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_max_concurrency(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_concurrency = _parse_max_concurrency(d.pop("max_concurrency", UNSET))

        def _parse_max_fuel_per_attempt(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_fuel_per_attempt = _parse_max_fuel_per_attempt(
            d.pop("max_fuel_per_attempt", UNSET)
        )

        def _parse_max_memory_mb(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_memory_mb = _parse_max_memory_mb(d.pop("max_memory_mb", UNSET))

        def _parse_max_timeout_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_timeout_ms = _parse_max_timeout_ms(d.pop("max_timeout_ms", UNSET))

        def _parse_max_plugin_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_plugin_bytes = _parse_max_plugin_bytes(d.pop("max_plugin_bytes", UNSET))

        def _parse_max_queued_jobs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_queued_jobs = _parse_max_queued_jobs(d.pop("max_queued_jobs", UNSET))

        def _parse_enqueue_per_minute(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        enqueue_per_minute = _parse_enqueue_per_minute(
            d.pop("enqueue_per_minute", UNSET)
        )

        def _parse_max_stored_plugin_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_stored_plugin_bytes = _parse_max_stored_plugin_bytes(
            d.pop("max_stored_plugin_bytes", UNSET)
        )

        def _parse_max_schedules(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_schedules = _parse_max_schedules(d.pop("max_schedules", UNSET))

        def _parse_max_workflows(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_workflows = _parse_max_workflows(d.pop("max_workflows", UNSET))

        def _parse_max_workflow_versions(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_workflow_versions = _parse_max_workflow_versions(
            d.pop("max_workflow_versions", UNSET)
        )

        def _parse_max_http_requests_per_attempt(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_http_requests_per_attempt = _parse_max_http_requests_per_attempt(
            d.pop("max_http_requests_per_attempt", UNSET)
        )

        def _parse_max_http_response_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_http_response_bytes = _parse_max_http_response_bytes(
            d.pop("max_http_response_bytes", UNSET)
        )

        quota_patch = cls(
            max_concurrency=max_concurrency,
            max_fuel_per_attempt=max_fuel_per_attempt,
            max_memory_mb=max_memory_mb,
            max_timeout_ms=max_timeout_ms,
            max_plugin_bytes=max_plugin_bytes,
            max_queued_jobs=max_queued_jobs,
            enqueue_per_minute=enqueue_per_minute,
            max_stored_plugin_bytes=max_stored_plugin_bytes,
            max_schedules=max_schedules,
            max_workflows=max_workflows,
            max_workflow_versions=max_workflow_versions,
            max_http_requests_per_attempt=max_http_requests_per_attempt,
            max_http_response_bytes=max_http_response_bytes,
        )

        return quota_patch
