"""Rendering: the templates, inlining done once, preflight, and errors that name the template."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import lxml.html
import pytest

from newsletter.compose.markers import ReaderValues, personalise
from newsletter.compose.preflight import check
from newsletter.compose.rendering import render_issue
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


def test_gmail_clipping_blocks_unless_forced_and_a_missing_link_blocks_always(
    templates: Path,
) -> None:
    issue = an_issue(summary="Очень длинный текст. " * 4000)
    rendered = render_issue(issue, SITE, templates)
    html, text = personalise(rendered, VALUES)
    report = check(rendered, html, text, SITE.privacy_url)
    assert {f.code: f.level for f in report.findings}["gmail-clipping"] == "error"
    assert report.encoded_html_bytes > 102 * 1024
    refusal = report.refusal("issue 7")
    assert refusal is not None and "Gmail clips" in refusal and "issue approve --force" in refusal
    assert report.refusal("issue 7", force=True) is None
    (templates / "issue.html").write_text(
        (templates / "issue.html").read_text().replace("{{ reader.unsubscribe_url }}", "#")
    )
    rendered = render_issue(issue, SITE, templates)
    html, text = personalise(rendered, VALUES)
    report = check(rendered, html, text, SITE.privacy_url)
    refusal = report.refusal("issue 7", force=True)
    assert refusal is not None and "no unsubscribe link" in refusal and "--force" not in refusal


def test_a_finding_an_editor_can_fix_names_the_field(templates: Path) -> None:
    issue = replace(an_issue(title="", subject="S" * 90), preheader="")
    rendered = render_issue(issue, SITE, templates)
    html, text = personalise(rendered, VALUES)
    fields = {
        f.code: f.field for f in check(rendered, html, text, SITE.privacy_url, issue.items).findings
    }
    assert fields["subject-long"] == "subject" and fields["preheader-missing"] == "preheader"


# ------------------------------------------------------------------ legible buttons

NOTICE_CONTEXT = {
    "send_day": "Friday",
    "send_weekday": 4,
    "next_send": date(2026, 12, 4),
    "confirm_days": 7,
}


def luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def style_value(element: lxml.html.HtmlElement, name: str) -> str | None:
    for part in (element.get("style") or "").split(";"):
        key, _, value = part.partition(":")
        if key.strip().lower() == name:
            return value.strip().split()[0]
    return None


def background_behind(element: lxml.html.HtmlElement) -> str:
    """The background a reader sees behind the element: its own, or the nearest
    ancestor's, as the inlined style or the bgcolor attribute says."""
    for node in [element, *element.iterancestors()]:
        found = style_value(node, "background-color") or node.get("bgcolor")
        if found:
            return found
    return "#ffffff"


@pytest.mark.parametrize("kind", ["confirm", "welcome", "reconsent"])
def test_every_notice_button_is_legible_with_and_without_its_cell(kind: str) -> None:
    """The confirmation mail's only button was white on white: its link had no background
    of its own and its cell none either. Every button of every notice is measured the way
    a mail client shows it, and again as a client that drops table cells' backgrounds."""
    from newsletter.compose.rendering import render_mail
    from newsletter.readers.consent import Policy

    policy = Policy("2026-11-01", "text", "0" * 64, "I agree.", datetime(2026, 11, 1, tzinfo=UTC))
    context = {**NOTICE_CONTEXT, "policy": policy}
    rendered = render_mail(kind, context, SITE, ROOT / "templates")
    page = lxml.html.fromstring(rendered.html)
    buttons = page.cssselect("a.button")
    assert buttons, f"{kind}: no button"
    for button in buttons:
        text = style_value(button, "color")
        assert text is not None and button.text_content().strip()
        assert contrast(text, background_behind(button)) >= 4.5, (kind, button.text_content())
        own = style_value(button, "background-color")
        assert own is not None and contrast(text, own) >= 4.5  # without the cell's


@pytest.mark.parametrize("kind", ["confirm", "welcome", "reconsent", "issue"])
def test_every_text_of_every_mail_meets_wcag_aa_contrast(kind: str) -> None:
    """Each element that sets its own text colour, against the background a reader sees
    behind it: at least 4.5:1 (WCAG AA for body text), the footer's grey included."""
    from newsletter.compose.rendering import render_mail
    from newsletter.readers.consent import Policy

    if kind == "issue":
        rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    else:
        policy = Policy(
            "2026-11-01", "text", "0" * 64, "I agree.", datetime(2026, 11, 1, tzinfo=UTC)
        )
        rendered = render_mail(kind, {**NOTICE_CONTEXT, "policy": policy}, SITE, ROOT / "templates")
    page = lxml.html.fromstring(rendered.html)
    low = []
    for element in page.iter():
        colour = style_value(element, "color") if isinstance(element.tag, str) else None
        if not colour or not colour.startswith("#") or not element.text_content().strip():
            continue
        hidden = [n for n in [element, *element.iterancestors()]
                  if style_value(n, "display") == "none"]  # fmt: skip
        if hidden:  # the preheader: shown by the inbox's list, not in the mail
            continue
        ratio = contrast(colour, background_behind(element))
        if ratio < 4.5:
            low.append((element.text_content().strip()[:40], colour, round(ratio, 2)))
    assert low == []


def test_the_mail_keeps_the_editors_order_with_a_heading_where_the_section_changes() -> None:
    """News, News, Feature, News: the mail shows them in that order (News heading, two
    stories; Features; News again), not with the third News story moved up."""
    from newsletter.compose.rendering import group_sections
    from newsletter.models import Article, IssueItem

    def item(position: int, section: str) -> IssueItem:
        article = Article(id=position, url=f"https://example.org/{position}", title=f"Story {position}",
                          summary="", section=section)  # fmt: skip
        return IssueItem(article=article, position=position)

    picked = (item(1, "News"), item(2, "News"), item(3, "Features"), item(4, "News"))
    sections = group_sections(picked)
    assert [(s.name, [i.title for i in s.items]) for s in sections] == [
        ("News", ["Story 1", "Story 2"]),
        ("Features", ["Story 3"]),
        ("News", ["Story 4"]),
    ]
    issue = an_issue()
    rendered = render_issue(replace(issue, items=picked), SITE, ROOT / "templates")
    for part in (rendered.text, rendered.html):
        places = [part.index(f"Story {n}") for n in (1, 2, 3, 4)]
        assert places == sorted(places)
