from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.finished_minute import FinishedMinute
    from ..models.host_alive import HostAlive
    from ..models.overview_live import OverviewLive
    from ..models.overview_running_by_host import OverviewRunningByHost


T = TypeVar("T", bound="Overview")


@_attrs_define
class Overview:
    """A tenant's jobs at a glance (`GET /v1/overview`).

    Attributes:
        live (OverviewLive): Jobs waiting or running, per state.
        running_by_host (OverviewRunningByHost): The tenant's running attempts per host (hosts with none are not
            listed).
        finished_per_minute (list[FinishedMinute]): Jobs finished in each of the last 60 minutes, oldest first.
        oldest_due (datetime.datetime | None | Unset): When the oldest job still waiting became due (how far behind the
            queue is).
        hosts (list[HostAlive] | Unset): The worker hosts alive (seen in the last 15 seconds), idle ones
            included, with the tenant's running attempts on each; a host running
            the tenant's attempts is listed even when it is not seen.
    """

    live: OverviewLive
    running_by_host: OverviewRunningByHost
    finished_per_minute: list[FinishedMinute]
    oldest_due: datetime.datetime | None | Unset = UNSET
    hosts: list[HostAlive] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        live = self.live.to_dict()

        running_by_host = self.running_by_host.to_dict()

        finished_per_minute = []
        for finished_per_minute_item_data in self.finished_per_minute:
            finished_per_minute_item = finished_per_minute_item_data.to_dict()
            finished_per_minute.append(finished_per_minute_item)

        oldest_due: None | str | Unset
        if isinstance(self.oldest_due, Unset):
            oldest_due = UNSET
        elif isinstance(self.oldest_due, datetime.datetime):
            oldest_due = self.oldest_due.isoformat()
        else:
            oldest_due = self.oldest_due

        hosts: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.hosts, Unset):
            hosts = []
            for hosts_item_data in self.hosts:
                hosts_item = hosts_item_data.to_dict()
                hosts.append(hosts_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "live": live,
                "running_by_host": running_by_host,
                "finished_per_minute": finished_per_minute,
            }
        )
        if oldest_due is not UNSET:
            field_dict["oldest_due"] = oldest_due
        if hosts is not UNSET:
            field_dict["hosts"] = hosts

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.finished_minute import FinishedMinute
        from ..models.host_alive import HostAlive
        from ..models.overview_live import OverviewLive
        from ..models.overview_running_by_host import OverviewRunningByHost

        d = dict(src_dict)
        live = OverviewLive.from_dict(d.pop("live"))

        running_by_host = OverviewRunningByHost.from_dict(d.pop("running_by_host"))

        finished_per_minute = []
        _finished_per_minute = d.pop("finished_per_minute")
        for finished_per_minute_item_data in _finished_per_minute:
            finished_per_minute_item = FinishedMinute.from_dict(
                finished_per_minute_item_data
            )

            finished_per_minute.append(finished_per_minute_item)

        def _parse_oldest_due(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                oldest_due_type_0 = datetime.datetime.fromisoformat(data)

                return oldest_due_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        oldest_due = _parse_oldest_due(d.pop("oldest_due", UNSET))

        _hosts = d.pop("hosts", UNSET)
        hosts: list[HostAlive] | Unset = UNSET
        if _hosts is not UNSET:
            hosts = []
            for hosts_item_data in _hosts:
                hosts_item = HostAlive.from_dict(hosts_item_data)

                hosts.append(hosts_item)

        overview = cls(
            live=live,
            running_by_host=running_by_host,
            finished_per_minute=finished_per_minute,
            oldest_due=oldest_due,
            hosts=hosts,
        )

        overview.additional_properties = d
        return overview

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
