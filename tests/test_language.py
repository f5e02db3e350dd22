"""The site's language: every fixed word of every mail and reader page from the catalogue,
dates in the language's words, and a catalogue that cannot fall behind the templates."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import lxml.html
import pytest
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from newsletter import language
from newsletter.compose.markers import personalise
from newsletter.compose.rendering import render_issue, render_mail
from newsletter.errors import ConfigError
from newsletter.language import LOCALES, long_date, missing, parse_language, translations
from newsletter.readers.consent import Policy
from newsletter.settings import Settings, load_settings
from newsletter.web import create_app

from .conftest import ROOT, SMTPServer, wait_for_mail
from .test_messages import SITE, an_issue
from .test_public_pages import text_of
from .test_rendering import NOTICE_CONTEXT, VALUES

RUSSIAN = replace(SITE, name="Еженедельник", language="ru")
# the English words of the mails and pages: none may be left in a Russian one
ENGLISH = re.compile(
    r"\b(Dear|reader|Unsubscribe|Privacy|policy|View in browser|Once|Monthly|Annually|"
    r"Support|independent|receive|Friday|December|Confirm|Please|Welcome|issue|By)\b"
)


def catalogue(lang: str) -> list[tuple[str | tuple[str, ...], str | tuple[str, ...]]]:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return [(m.id, m.string) for m in read_po(po, locale=lang) if m.id]


def test_the_russian_catalogue_has_every_message_of_every_mail_and_reader_page() -> None:
    assert missing("ru") == []


def test_a_message_without_a_translation_is_named_with_its_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "extra.html").write_text('<p>\n{{ _("A sentence nobody translated") }}</p>\n')
    monkeypatch.setattr(
        language, "SOURCES", (*language.SOURCES, (tmp_path, [("**.html", "jinja2")]))
    )
    assert missing("ru") == [f"{tmp_path.name}/extra.html:2: 'A sentence nobody translated'"]


def test_every_translation_keeps_the_placeholders_of_its_message() -> None:
    """A %(name)s lost or misspelt in a translation would break the mail at render time."""
    names = re.compile(r"%\((\w+)\)[sd]")
    for msgid, string in catalogue("ru"):
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = string if isinstance(string, tuple) else (string,)
        wanted = set(names.findall(ids[-1])) - {"num"}
        for text in strings:
            assert set(names.findall(text)) - {"num"} == wanted, (msgid, text)


def test_russian_plurals_take_the_three_forms() -> None:
    words = translations("ru")
    forms = [
        words.ngettext("%(num)d thing to fix: see below.", "%(num)d things to fix: see below.", n)
        % {"num": n}
        for n in (1, 3, 5, 21, 12)
    ]
    assert forms == [
        "Исправьте 1 поле: см. ниже.",
        "Исправьте 3 поля: см. ниже.",
        "Исправьте 5 полей: см. ниже.",
        "Исправьте 21 поле: см. ниже.",
        "Исправьте 12 полей: см. ниже.",
    ]


def test_dates_are_in_the_languages_words() -> None:
    friday = date(2026, 12, 4)
    assert long_date(friday, "ru") == "пятница, 4 декабря 2026\u202fг."
    assert long_date(friday, "en") == "Friday, December 4, 2026"
    assert long_date(friday, "en-GB") == "Friday, 4 December 2026"
    assert long_date(friday, "ru-XX") == "пятница, 4 декабря 2026\u202fг."  # a region Babel lacks


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("de", "no catalogue for 'de': shipped are en, ru"),
        ("english", "is not a language tag"),
        ("ru;drop", "is not a language tag"),
        ("", "is not a language tag"),
    ],
)
def test_a_language_without_a_catalogue_is_refused_by_name(value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"NEWSLETTER_LANGUAGE: .*{re.escape(problem)}"):
        load_settings({"NEWSLETTER_LANGUAGE": value}, Path("/nonexistent.toml"))
    assert parse_language(" RU ") == "ru" and parse_language("en_GB") == "en-GB"


def test_a_russian_issue_has_no_english_word_of_its_own() -> None:
    rendered = render_issue(replace(an_issue(), appeal=True), RUSSIAN, ROOT / "templates",
                            is_test=True)  # fmt: skip
    html, text = personalise(rendered, replace(VALUES, name=""))
    page = lxml.html.fromstring(html)
    assert page.get("lang") == "ru"
    words = " ".join(page.text_content().split())
    for expected in ("пятница, 27 ноября 2026\u202fг.", "Здравствуйте, читатель!", "Отписаться",
                     "Политика конфиденциальности", "Открыть в браузере", "Ежемесячно",
                     "Поддержите независимую журналистику", "ТЕСТ — читателям не отправлено"):  # fmt: skip
        expected = " ".join(expected.split())  # the date's narrow no-break space too
        assert expected in words, expected
        assert expected.casefold() in " ".join(text.split()).casefold(), expected  # HEADINGS
    # what is left in English is the test issue's own content and the addresses
    own = {"Title", "Summary", "Subject", "News", "Preheader", "text", "that", "is", "long"}
    assert [w for w in ENGLISH.findall(words) if w not in own] == []
    assert [w for w in ENGLISH.findall(text) if w not in own] == []


@pytest.mark.parametrize("kind", ["confirm", "welcome", "reconsent"])
def test_every_russian_notice_is_russian_from_subject_to_footer(kind: str) -> None:
    rendered = render_mail(
        kind, {**NOTICE_CONTEXT, "policy": _policy()}, RUSSIAN, ROOT / "templates"
    )
    html, text = personalise(rendered, replace(VALUES, name="Лена"))
    words = " ".join(lxml.html.fromstring(html).text_content().split())
    assert "Здравствуйте, Лена!" in words and "Здравствуйте, Лена!" in text
    assert lxml.html.fromstring(html).get("lang") == "ru"
    for part in (rendered.subject, words, text):
        assert ENGLISH.findall(part) == [], (part, ENGLISH.findall(part))
    if kind == "confirm":
        assert "каждую пятницу" in words and "Ссылка действует 7 дней" in words
    if kind == "welcome":
        assert rendered.subject == "Добро пожаловать в «Еженедельник»! Первый выпуск: " \
            "пятница, 4 декабря 2026 г."  # fmt: skip


def _policy() -> Policy:
    return Policy("2026-11-01", "текст", "0" * 64, "Я согласен.", datetime(2026, 11, 1, tzinfo=UTC))


@pytest.fixture
def russian(smtp_settings: Settings) -> Settings:
    return replace(smtp_settings, language="ru", site_name="Еженедельник")


def test_the_reader_pages_speak_russian(russian: Settings, desk: object) -> None:
    client: FlaskClient = create_app(russian).test_client()
    signup = client.get("/subscribe")
    page = lxml.html.document_fromstring(signup.get_data(as_text=True))
    assert page.get("lang") == "ru"
    assert "Подписка на «Еженедельник»" in text_of(signup) and "Подписаться" in text_of(signup)
    refused = client.post("/subscribe", data={"email": ""})
    assert refused.status_code == 400
    assert "Исправьте 2 поля: см. ниже." in text_of(refused)
    assert "Введите адрес электронной почты." in text_of(refused)
    bad_link = client.get("/confirm/not-a-token")
    assert "Ссылка не работает" in text_of(bad_link)
    assert "эта ссылка недействительна" in text_of(bad_link)
    bad = client.post("/subscribe", data={"email": "lena.example.org", "name": "Л" * 301})
    assert "На этот адрес нельзя написать" in text_of(bad)  # not email-validator's English
    assert "Сократите до 300 символов." in text_of(bad)
    assert "Версии nope нашей политики" in text_of(client.get("/privacy/nope"))
    missing_page = client.get("/no-such-page")
    assert missing_page.status_code == 404 and "Страница не найдена" in text_of(missing_page)


def test_a_russian_sign_up_gets_a_russian_confirmation(
    russian: Settings, desk: object, smtp_server: SMTPServer
) -> None:
    client = create_app(russian).test_client()
    answer = client.post("/subscribe", data={"email": "lena@example.org", "consent": "yes"})
    assert "Проверьте почту" in text_of(answer)
    wait_for_mail(smtp_server, 1)
    [received] = smtp_server.handler.received
    mail = message_from_bytes(received.data, policy=default)
    assert str(mail["Subject"]) == "Подтвердите подписку на «Еженедельник»"
    body = mail.get_body(("plain",))
    assert body is not None and "Здравствуйте, читатель!" in body.get_content()
