"""Moving a caller's time to UTC, the zone every stored time is in."""

from __future__ import annotations

import datetime as dt

OUT_OF_RANGE = "Not a time between the years 1 and 9999 in UTC."


def to_utc(moment: dt.datetime) -> dt.datetime:
    """The moment in UTC (a naive time is UTC already); ValueError if UTC cannot hold it.

    A time near year 1 or 9999 with an offset can fall outside the years a datetime
    holds once moved to UTC (0001-01-01T00:00+01:00).
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
