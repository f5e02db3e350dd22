"""When: a cron trigger from NEWSLETTER_SEND_AT in NEWSLETTER_TIMEZONE (the wall-clock
hour holds across daylight-saving changes), the next and the last fire time, and how a
moment reads in the site's zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from newsletter.settings.values import WEEKDAYS, SendAt


def cron_trigger(at: SendAt, zone: ZoneInfo) -> CronTrigger:
    return CronTrigger(
        day_of_week="*" if at.weekday is None else WEEKDAYS[at.weekday],
        hour=at.at.hour,
        minute=at.at.minute,
        second=at.at.second,
        timezone=zone,
    )


def next_fire(at: SendAt, zone: ZoneInfo, now: datetime) -> datetime:
    """The first fire time at or after `now`, as the scheduler computes it."""
    fire: datetime = cron_trigger(at, zone).get_next_fire_time(None, now)
    return fire


def last_fire(at: SendAt, zone: ZoneInfo, now: datetime) -> datetime:
    """The latest fire time at or before `now`."""
    local = now.astimezone(zone)
    back = 0 if at.weekday is None else (local.weekday() - at.weekday) % 7
    day = local.date() - timedelta(days=back)
    fire = datetime.combine(day, at.at, tzinfo=zone)
    if fire > now:
        fire = datetime.combine(day - at.period, at.at, tzinfo=zone)
    return fire


def describe(moment: datetime, zone: ZoneInfo) -> str:
    """'Fri 2026-11-27 09:00:00 Europe/Amsterdam (08:00 UTC)'."""
    local = f"{moment.astimezone(zone):%a %Y-%m-%d %H:%M:%S} {zone.key}"
    if zone.key == "UTC":
        return local
    return f"{local} ({moment.astimezone(ZoneInfo('UTC')):%H:%M} UTC)"
