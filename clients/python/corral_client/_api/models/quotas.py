from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="Quotas")


@_attrs_define
class Quotas:
    """A tenant's quotas (docs/api.md, "Tenants and keys").

    Attributes:
        max_concurrency (int): Attempts of the tenant running at once, across all hosts.
        max_fuel_per_attempt (int):
        max_memory_mb (int):
        max_timeout_ms (int):
        max_plugin_bytes (int):
        max_queued_jobs (int):
        enqueue_per_minute (int):
        max_stored_plugin_bytes (int): Bytes of components the tenant's live versions name (each distinct
            component once): what its uploads may make the database keep.
        max_schedules (int): Schedules the tenant may define.
        max_workflows (int): Workflows (by name) the tenant may define.
        max_workflow_versions (int): Versions one workflow may have (each holds a whole definition).
        max_http_requests_per_attempt (int): Outbound HTTP requests one attempt may make (its plugin's
            `http.max_requests` is capped by it).
        max_http_response_bytes (int): Bytes of one outbound response body (caps `http.max_response_bytes`).
    """

    max_concurrency: int
    max_fuel_per_attempt: int
    max_memory_mb: int
    max_timeout_ms: int
    max_plugin_bytes: int
    max_queued_jobs: int
    enqueue_per_minute: int
    max_stored_plugin_bytes: int
    max_schedules: int
    max_workflows: int
    max_workflow_versions: int
    max_http_requests_per_attempt: int
    max_http_response_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        max_concurrency = self.max_concurrency

        max_fuel_per_attempt = self.max_fuel_per_attempt

        max_memory_mb = self.max_memory_mb

        max_timeout_ms = self.max_timeout_ms

        max_plugin_bytes = self.max_plugin_bytes

        max_queued_jobs = self.max_queued_jobs

        enqueue_per_minute = self.enqueue_per_minute

        max_stored_plugin_bytes = self.max_stored_plugin_bytes

        max_schedules = self.max_schedules

        max_workflows = self.max_workflows

        max_workflow_versions = self.max_workflow_versions

        max_http_requests_per_attempt = self.max_http_requests_per_attempt

        max_http_response_bytes = self.max_http_response_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "max_concurrency": max_concurrency,
                "max_fuel_per_attempt": max_fuel_per_attempt,
                "max_memory_mb": max_memory_mb,
                "max_timeout_ms": max_timeout_ms,
                "max_plugin_bytes": max_plugin_bytes,
                "max_queued_jobs": max_queued_jobs,
                "enqueue_per_minute": enqueue_per_minute,
                "max_stored_plugin_bytes": max_stored_plugin_bytes,
                "max_schedules": max_schedules,
                "max_workflows": max_workflows,
                "max_workflow_versions": max_workflow_versions,
                "max_http_requests_per_attempt": max_http_requests_per_attempt,
                "max_http_response_bytes": max_http_response_bytes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        max_concurrency = d.pop("max_concurrency")

        max_fuel_per_attempt = d.pop("max_fuel_per_attempt")

        max_memory_mb = d.pop("max_memory_mb")

        max_timeout_ms = d.pop("max_timeout_ms")

        max_plugin_bytes = d.pop("max_plugin_bytes")

        max_queued_jobs = d.pop("max_queued_jobs")

        enqueue_per_minute = d.pop("enqueue_per_minute")

        max_stored_plugin_bytes = d.pop("max_stored_plugin_bytes")

        max_schedules = d.pop("max_schedules")

        max_workflows = d.pop("max_workflows")

        max_workflow_versions = d.pop("max_workflow_versions")

        max_http_requests_per_attempt = d.pop("max_http_requests_per_attempt")

        max_http_response_bytes = d.pop("max_http_response_bytes")

        quotas = cls(
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

        quotas.additional_properties = d
        return quotas

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
