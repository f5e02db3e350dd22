"""The reader pages' words in the site's language: `_` for a message written in the
page's Python, looked up in newsletter.language's catalogue (a message the catalogue
does not know, an error's own words say, stays as it is)."""

from __future__ import annotations

from flask import current_app

from newsletter.language import translations


def speaks_english() -> bool:
    language: str = current_app.config["DESK"].settings.language
    return language.partition("-")[0] == "en"


def _(message: str, **values: object) -> str:
    language = current_app.config["DESK"].settings.language
    text = translations(language).gettext(message)
    return text % values if values else text
