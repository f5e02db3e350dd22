"""The site's language (NEWSLETTER_LANGUAGE, a BCP 47 tag): the fixed words of every mail
and reader page from a gettext catalogue, and dates in that language's words (Babel).

English is the language the words are written in, so it needs no catalogue; every other
shipped language has `locale/LANG/LC_MESSAGES/messages.po`, compiled by Babel when first
used. `python -m newsletter.language` lists what a catalogue lacks (a test fails on any),
and `--pot FILE` writes the template a translator starts from.
"""

from __future__ import annotations

import gettext
import re
import sys
from datetime import date
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).parent
LOCALES = PACKAGE / "locale"
SHIPPED = ("en", "ru")  # English, the source, and the languages with a catalogue
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def N_(message: str) -> str:
    """Marks a message for the catalogue where it is defined; translated where it is used."""
    return message


# "every Friday": a phrase per weekday, since languages inflect the day after "every"
EVERY_WEEKDAY = (
    N_("every Monday"),
    N_("every Tuesday"),
    N_("every Wednesday"),
    N_("every Thursday"),
    N_("every Friday"),
    N_("every Saturday"),
    N_("every Sunday"),
)
EVERY_DAY = N_("every day")  # a daily newsletter's


def parse_language(value: str) -> str:
    """A BCP 47 tag (en, ru, en-GB) of a shipped language; ValueError says what is wrong."""
    tag = value.strip().replace("_", "-")
    if not _TAG.match(tag):
        raise ValueError(f"{value!r} is not a language tag like en, ru or en-GB")
    primary, _, rest = tag.partition("-")
    if primary.lower() not in SHIPPED:
        raise ValueError(
            f"no catalogue for {primary!r}: shipped are {', '.join(SHIPPED)} "
            f"(a new one is newsletter/locale/{primary.lower()}/LC_MESSAGES/messages.po)"
        )
    return primary.lower() + (f"-{rest}" if rest else "")


@lru_cache(maxsize=8)
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language`, compiled from its .po file once per process."""
    primary = language.partition("-")[0].lower()
    if primary == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo  # Babel: when a mail or page is rendered
    from babel.messages.pofile import read_po

    with (LOCALES / primary / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=primary)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


@lru_cache(maxsize=8)
def _locale(language: str) -> Any:
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(language, sep="-")
    except (ValueError, UnknownLocaleError):  # a region Babel does not know: the language's
        return Locale.parse(language.partition("-")[0])


def long_date(day: date, language: str) -> str:
    """ "Friday, December 4, 2026"; "пятница, 4 декабря 2026 г."."""
    from babel.dates import format_date

    return str(format_date(day, "full", locale=_locale(language)))


def medium_date(day: date, language: str) -> str:
    """ "December 4, 2026"; "4 декабря 2026 г."."""
    from babel.dates import format_date

    return str(format_date(day, "long", locale=_locale(language)))


def weekday_name(weekday: int, language: str) -> str:
    """ "Friday"; "пятница" (Monday is 0)."""
    from babel.dates import get_day_names

    return str(get_day_names("wide", locale=_locale(language))[weekday])


def every_weekday(weekday: int | None, language: str) -> str:
    """ "every Friday"; "каждую пятницу"; for a daily newsletter (None), "every day"."""
    words = EVERY_DAY if weekday is None else EVERY_WEEKDAY[weekday]
    return translations(language).gettext(words)


# The catalogue's sources: the mail templates, the reader pages and their Python
_WEB = [
    ("desk/**", "ignore"),  # the editors' desk speaks English: it is no reader's page
    ("templates/desk/**", "ignore"),
    ("templates/embed.html", "ignore"),  # for the site's web team, not for readers
    ("**.html", "jinja2"),
    ("public.py", "python"),
    ("signup.py", "python"),
    ("error_pages.py", "python"),
    ("archive.py", "python"),
    ("chosen.py", "python"),
]
SOURCES = (
    (PACKAGE / "defaults" / "templates", [("**.html", "jinja2"), ("**.txt", "jinja2")]),
    (PACKAGE / "web", _WEB),
    (
        PACKAGE / "readers",
        [("tokens.py", "python"), ("optin.py", "python"), ("subscribers.py", "python")],
    ),  # the messages a link's page shows
    (PACKAGE, [("language.py", "python")]),
)
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


def extract() -> dict[str | tuple[str, str], list[str]]:
    """Every message of the sources (a plural's as its pair), with where it is."""
    from babel.messages.extract import extract_from_dir

    found: dict[str | tuple[str, str], list[str]] = {}
    for folder, methods in SOURCES:
        options = {"**.html": {"extensions": "jinja2.ext.i18n"}, "**.txt": {}}
        for name, line, message, _comments, _context in extract_from_dir(
            str(folder), methods, options, keywords=KEYWORDS
        ):
            if folder == PACKAGE and name != "language.py":
                continue
            key = message if isinstance(message, str) else (message[0], message[1])
            found.setdefault(key, []).append(f"{folder.name}/{name}:{line}")
    return found


def missing(language: str) -> list[str]:
    """The messages `language`'s catalogue lacks or leaves fuzzy, each with where it is."""
    from babel.messages.pofile import read_po

    with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    gaps = []
    for key, where in extract().items():
        entry = catalog.get(key if isinstance(key, str) else key[0])
        strings = entry.string if entry is not None else None
        done = (
            entry is not None
            and not entry.fuzzy
            and all(strings if isinstance(strings, tuple) else (strings,))
        )
        if not done:
            gaps.append(f"{where[0]}: {key!r}")
    return gaps


def write_pot(path: Path) -> None:
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(project="newsletter desk")
    for key, where in extract().items():
        locations = [(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where]
        catalog.add(key, locations=locations)
    with path.open("wb") as out:
        write_po(out, catalog, width=88)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pot"]:
        write_pot(Path(sys.argv[2]))
        raise SystemExit(0)
    gaps = [f"{lang}: {gap}" for lang in SHIPPED if lang != "en" for gap in missing(lang)]
    print("\n".join(gaps) or "every catalogue is complete")
    raise SystemExit(1 if gaps else 0)
