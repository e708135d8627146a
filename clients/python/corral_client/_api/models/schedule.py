from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.target import Target
    from ..models.tick import Tick


T = TypeVar("T", bound="Schedule")


@_attrs_define
class Schedule:
    """A stored schedule.

    Attributes:
        name (str):
        cron (str):
        timezone (str):
        target (Target): What a tick starts: a job of a plugin, or a run of a workflow.
        paused (bool):
        catch_up (bool):
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        next_tick (datetime.datetime | None | Unset): The next tick to fire (none while paused).
        recent_ticks (list[Tick] | None | Unset): The latest fired ticks, newest first (only when one schedule is read).
    """

    name: str
    cron: str
    timezone: str
    target: Target
    paused: bool
    catch_up: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime
    next_tick: datetime.datetime | None | Unset = UNSET
    recent_ticks: list[Tick] | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        cron = self.cron

        timezone = self.timezone

        target = self.target.to_dict()

        paused = self.paused

        catch_up = self.catch_up

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        next_tick: None | str | Unset
        if isinstance(self.next_tick, Unset):
            next_tick = UNSET
        elif isinstance(self.next_tick, datetime.datetime):
            next_tick = self.next_tick.isoformat()
        else:
            next_tick = self.next_tick

        recent_ticks: list[dict[str, Any]] | None | Unset
        if isinstance(self.recent_ticks, Unset):
            recent_ticks = UNSET
        elif isinstance(self.recent_ticks, list):
            recent_ticks = []
            for recent_ticks_type_0_item_data in self.recent_ticks:
                recent_ticks_type_0_item = recent_ticks_type_0_item_data.to_dict()
                recent_ticks.append(recent_ticks_type_0_item)

        else:
            recent_ticks = self.recent_ticks

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
                "cron": cron,
                "timezone": timezone,
                "target": target,
                "paused": paused,
                "catch_up": catch_up,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
        if next_tick is not UNSET:
            field_dict["next_tick"] = next_tick
        if recent_ticks is not UNSET:
            field_dict["recent_ticks"] = recent_ticks

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.target import Target
        from ..models.tick import Tick

        d = dict(src_dict)
        name = d.pop("name")

        cron = d.pop("cron")

        timezone = d.pop("timezone")

        target = Target.from_dict(d.pop("target"))

        paused = d.pop("paused")

        catch_up = d.pop("catch_up")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_next_tick(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                next_tick_type_0 = datetime.datetime.fromisoformat(data)

                return next_tick_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        next_tick = _parse_next_tick(d.pop("next_tick", UNSET))

        def _parse_recent_ticks(data: object) -> list[Tick] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                recent_ticks_type_0 = []
                _recent_ticks_type_0 = data
                for recent_ticks_type_0_item_data in _recent_ticks_type_0:
                    recent_ticks_type_0_item = Tick.from_dict(
                        recent_ticks_type_0_item_data
                    )

                    recent_ticks_type_0.append(recent_ticks_type_0_item)

                return recent_ticks_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[Tick] | None | Unset, data)

        recent_ticks = _parse_recent_ticks(d.pop("recent_ticks", UNSET))

        schedule = cls(
            name=name,
            cron=cron,
            timezone=timezone,
            target=target,
            paused=paused,
            catch_up=catch_up,
            created_at=created_at,
            updated_at=updated_at,
            next_tick=next_tick,
            recent_ticks=recent_ticks,
        )

        schedule.additional_properties = d
        return schedule

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
