"""The pages' one message catalogue (gettext, through Babel) and locale formatting.

The catalogues are ``web/locale/<lang>/LC_MESSAGES/messages.po``; they are compiled in memory
when this module is first imported (no .mo file in git, no build step to forget). Indonesian is
the default; an account may choose English (``agents.language``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

from settings import settings

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
CURRENCY = "IDR"


def language_or_default(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> Translations:
    """The compiled catalogue of one language (compiled from its .po, once per process)."""
    import io

    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


class Formats:
    """Dates, durations, numbers and money as a reader of this language writes them, in the
    business's time zone."""

    def __init__(self, language: str) -> None:
        self.locale = Locale.parse(language)
        self.zone = ZoneInfo(settings.timezone)

    def datetime(self, moment: datetime | None, style: str = "medium") -> str:
        if moment is None:
            return ""
        return format_datetime(moment, style, tzinfo=self.zone, locale=self.locale)

    def zoned(self, moment: datetime | None) -> str:
        """A date and time with the zone's name ("7 Des 2026 15.24 WIB"), so a reader in another
        zone than the business's knows which clock it is."""
        if moment is None:
            return ""
        return " ".join(
            (
                format_date(moment.astimezone(self.zone).date(), "medium", locale=self.locale),
                format_time(moment, "short", tzinfo=self.zone, locale=self.locale),
                format_datetime(moment, "z", tzinfo=self.zone, locale=self.locale),
            )
        )

    def time(self, moment: datetime | None) -> str:
        return (
            "" if moment is None else format_datetime(moment, "HH:mm", tzinfo=self.zone, locale=self.locale)
        )

    def date(self, day: date) -> str:
        return format_date(day, "medium", locale=self.locale)

    def seconds(self, value: float | None) -> str:
        """A duration given in seconds (a dash for none), as ``duration`` writes it."""
        return "\u2013" if value is None else self.duration(timedelta(seconds=value))

    def duration(self, delta: timedelta) -> str:
        return format_timedelta(delta, threshold=1.5, locale=self.locale)

    def money(self, amount: float | int | None, currency: str = CURRENCY) -> str:
        return "" if amount is None else format_currency(amount, currency, locale=self.locale)

    def number(self, value: float | int) -> str:
        return format_decimal(value, locale=self.locale)
