"""Rendering: the templates, inlining done once, preflight, and errors that name the template."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest

from newsletter.compose.preflight import check
from newsletter.compose.rendering import ReaderValues, personalise, render_issue
from newsletter.errors import TemplateError

from .conftest import ROOT
from .test_messages import SITE, an_issue

VALUES = ReaderValues(
    name="Ann",
    email="ann@example.org",
    unsubscribe_url="https://news.example.org/unsubscribe/T",
    view_url="https://news.example.org/view/7/T",
)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    return folder


def test_media_queries_stay_in_a_style_block_and_important_survives() -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    document = lxml.html.document_fromstring(rendered.html)
    styles = " ".join(s.text or "" for s in document.iter("style"))
    assert "@media" in styles and "!important" in styles


def test_the_footer_has_privacy_postal_address_and_unsubscribe() -> None:
    html, text = personalise(render_issue(an_issue(), SITE, ROOT / "templates"), VALUES)
    for part in (html, text):
        assert SITE.privacy_url in part and SITE.postal_address in part
        assert VALUES.unsubscribe_url in part and VALUES.view_url in part
    assert "ann@example.org" in text


def test_the_appeal_is_switchable_per_issue() -> None:
    with_appeal, _ = personalise(render_issue(an_issue(), SITE, ROOT / "templates"), VALUES)
    issue = replace(an_issue(), appeal=False)
    without, text = personalise(render_issue(issue, SITE, ROOT / "templates"), VALUES)
    assert "period=monthly" in with_appeal
    assert "period=monthly" not in without and "period=monthly" not in text


def test_a_reader_without_a_name_gets_the_templates_fallback() -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    _, text = personalise(rendered, replace(VALUES, name=""))
    assert "Dear reader," in text


def test_a_syntax_error_names_the_template_and_line(templates: Path) -> None:
    path = templates / "issue.txt"
    path.write_text("line one\nline two\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"issue\.txt, line 3: "):
        render_issue(an_issue(), SITE, templates)


def test_an_unknown_variable_names_the_template_and_line(templates: Path) -> None:
    path = templates / "issue.txt"
    path.write_text("ok\n{{ issue.subjcet }}\n")
    with pytest.raises(TemplateError, match=r"issue\.txt, line 2: .*subjcet"):
        render_issue(an_issue(), SITE, templates)


def test_a_missing_template_is_named(templates: Path) -> None:
    (templates / "issue.html").unlink()
    with pytest.raises(TemplateError, match=r"template issue\.html is missing"):
        render_issue(an_issue(), SITE, templates)


def test_preflight_passes_the_shipped_templates() -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    html, text = personalise(rendered, VALUES)
    report = check(rendered, html, text, SITE.privacy_url)
    assert report.errors == ()
    assert 10_000 < report.encoded_html_bytes < 102 * 1024


def test_preflight_catches_what_editors_must_fix(templates: Path) -> None:
    html_path = templates / "issue.html"
    source = html_path.read_text()
    source = source.replace("{{ reader.unsubscribe_url }}", "https://example.org/x")
    source = source.replace("{{ site.privacy_url }}", "https://example.org/y")
    html_path.write_text(source.replace("</body>", '<img src="http://example.org/p.png"></body>'))
    issue = replace(an_issue(subject="S" * 90), preheader="")
    rendered = render_issue(issue, SITE, templates)
    html, text = personalise(rendered, VALUES)
    codes = {f.code: f.level for f in check(rendered, html, text, SITE.privacy_url).findings}
    assert codes["unsubscribe-missing"] == "error"
    assert codes["privacy-missing"] == "error"
    assert codes["subject-long"] == codes["preheader-missing"] == "warning"
    assert codes["image-alt"] == codes["insecure-image"] == "warning"


def test_preflight_warns_before_gmail_clips(templates: Path) -> None:
    issue = an_issue(summary="Очень длинный текст. " * 4000)
    rendered = render_issue(issue, SITE, templates)
    html, text = personalise(rendered, VALUES)
    report = check(rendered, html, text, SITE.privacy_url)
    assert "gmail-clipping" in {f.code for f in report.findings}
    assert report.encoded_html_bytes > 102 * 1024
