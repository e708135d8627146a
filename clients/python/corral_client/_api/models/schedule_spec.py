from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.target import Target


T = TypeVar("T", bound="ScheduleSpec")


@_attrs_define
class ScheduleSpec:
    """A schedule as a tenant writes it (`PUT /v1/schedules/{name}`).

    Attributes:
        cron (str): 5 fields (minute hour day-of-month month day-of-week), or 6 with
            seconds first.
        target (Target): What a tick starts: a job of a plugin, or a run of a workflow.
        timezone (str | Unset): An IANA time zone (`Europe/Berlin`); `UTC` when absent.
        paused (bool | Unset): A paused schedule fires nothing; resuming does not fire the ticks missed.
        catch_up (bool | Unset): After downtime: fire every missed tick (oldest first), not only the latest.
    """

    cron: str
    target: Target
    timezone: str | Unset = UNSET
    paused: bool | Unset = UNSET
    catch_up: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cron = self.cron

        target = self.target.to_dict()

        timezone = self.timezone

        paused = self.paused

        catch_up = self.catch_up

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cron": cron,
                "target": target,
            }
        )
        if timezone is not UNSET:
            field_dict["timezone"] = timezone
        if paused is not UNSET:
            field_dict["paused"] = paused
        if catch_up is not UNSET:
            field_dict["catch_up"] = catch_up

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.target import Target

        d = dict(src_dict)
        cron = d.pop("cron")

        target = Target.from_dict(d.pop("target"))

        timezone = d.pop("timezone", UNSET)

        paused = d.pop("paused", UNSET)

        catch_up = d.pop("catch_up", UNSET)

        schedule_spec = cls(
            cron=cron,
            target=target,
            timezone=timezone,
            paused=paused,
            catch_up=catch_up,
        )

        return schedule_spec
