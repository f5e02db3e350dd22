"""Every mail kind as a reader's mail client shows it: rendered and inlined as sent, opened
in Chromium at 600 and 375 px, with its <style> element and without (Gmail's apps for
other accounts and Outlook drop it), and checked from computed styles: no text or link
below WCAG AA contrast against what is behind it, nothing scrolling sideways on a
phone, every button with a visible label. Screenshots of each for people to look at.

The editors' alerts are plain text (no HTML part): nothing to lay out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.compose.markers import ReaderValues, personalise
from newsletter.compose.rendering import Site, render_issue, render_mail
from newsletter.models import Article, Issue, IssueItem
from newsletter.readers.consent import Policy

from .conftest import ROOT
from .test_images import Images, png, serving
from .test_messages import SITE as ONE_LINE_SITE

pytestmark = pytest.mark.slow  # Chromium in its own process

SITE = replace(ONE_LINE_SITE, postal_address="The Weekly, 1 Example Street\n10000 Example City")
VALUES = ReaderValues(
    name="Ann Example",
    email="ann.example@example.org",
    unsubscribe_url="https://news.example.org/unsubscribe/0.AbCdEf",
    view_url="https://news.example.org/view/2/0.AbCdEf",
    confirm_url="https://news.example.org/confirm/0.AbCdEf",
    reconsent_url="https://news.example.org/reconsent/0.AbCdEf",
)
POLICY = Policy("2026-11-01", "text", "0" * 64, "I agree to the privacy policy.",
                datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip
NOTICE = {"send_day": "Friday", "send_weekday": 4, "next_send": date(2026, 12, 4),
          "confirm_days": 7, "policy": POLICY}  # fmt: skip
WIDTHS = (600, 375)
KINDS = ("issue", "test", "confirm", "welcome", "reconsent")

# The text nodes a reader can see, each with its colour, the colour behind it (the
# nearest ancestor with a background) and whether it is large text (WCAG: 24 px, or
# 18.66 px bold); the page's sideways overflow; the buttons' labels and boxes.
LOOK = """() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const behind = el => {
    for (let e = el; e; e = e.parentElement) {
      const [r, g, b, a = 1] = parse(getComputedStyle(e).backgroundColor);
      if (a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const texts = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement, words = n.textContent.trim();
    if (!words || !el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    const style = getComputedStyle(el), size = parseFloat(style.fontSize);
    if (size < 2) continue;  // a preheader's spacer, shown to nobody
    texts.push({words: words.slice(0, 60), colour: parse(style.color).slice(0, 3),
                behind: behind(el), large: size >= 24 || (size >= 18.66 && +style.fontWeight >= 700)});
  }
  const buttons = [...document.querySelectorAll("a.button")].map(a => {
    const box = a.getBoundingClientRect();
    return {label: a.innerText.trim(), width: box.width, height: box.height,
            right: box.right};
  });
  return {texts, buttons, scroll: document.documentElement.scrollWidth, width: innerWidth};
}"""


def luminance(rgb: list[float]) -> float:
    channels = [c / 255 for c in rgb]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: list[float], b: list[float]) -> float:
    lighter, darker = sorted((luminance(a), luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    """The issue's pictures, served on loopback so the screenshots show real images."""
    pictures = {
        "/wide.png": (png(1200, 675), "image/png"),
        "/thumb.png": (png(240, 160), "image/png"),
    }
    with serving(pictures) as server:
        yield server


def an_issue(base: str) -> Issue:
    def article(n: int, section: str, title: str, image: tuple[str, int, int] | None) -> Article:
        path, width, height = image or ("", 0, 0)
        return Article(
            id=n, url=f"https://example.org/2026/12/0{n}/story", title=title, section=section,
            summary="Councillors argued until the small hours over the tram plan, the rents "
            "and a library that never closes; here is what changes for you and when.",
            author="Maria Example", published_at=datetime(2026, 12, n, 8, tzinfo=UTC),
            image_url=f"{base}{path}" if image else None,
            image_width=width or None, image_height=height or None,
        )  # fmt: skip

    items = (
        article(1, "News", "Budget passes after a night of amendments", ("/wide.png", 1200, 675)),
        article(2, "News", "A four-day school week, one term in", ("/thumb.png", 240, 160)),
        article(3, "Features", "The libraries that never close", None),
        article(4, "Features", "A size the feed did not give", ("/wide.png", 0, 0)),
    )
    return Issue(
        id=2, send_date=date(2026, 12, 4), status="approved",
        subject="The week in three stories", preheader="From the budget vote to the night libraries",
        note="Good morning. **The budget vote** ran to its last hour.\n\n- trams\n- rents",
        appeal=True,
        items=tuple(IssueItem(a, i) for i, a in enumerate(items, start=1)),
    )  # fmt: skip


def mail_html(kind: str, site: Site, base: str) -> str:
    if kind in ("issue", "test"):
        rendered = render_issue(an_issue(base), site, ROOT / "templates", is_test=kind == "test")
    else:
        rendered = render_mail(kind, NOTICE, site, ROOT / "templates")
    html, _text = personalise(rendered, VALUES)
    return html


def without_style(html: str) -> str:
    return re.sub(r"<style\b.*?</style>", "", html, flags=re.DOTALL | re.IGNORECASE)


def look(chromium: Any, html: str, width: int, picture: Path | None) -> dict[str, Any]:
    context = chromium.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.set_content(html, wait_until="load")
        seen: dict[str, Any] = page.evaluate(LOOK)
        if picture is not None:
            page.screenshot(path=str(picture), full_page=True)
        return seen
    finally:
        context.close()


def problems(seen: dict[str, Any], width: int) -> list[str]:
    found = []
    for text in seen["texts"]:
        ratio = contrast(text["colour"], text["behind"])
        if ratio < (3.0 if text["large"] else 4.5):
            found.append(f"{text['words']!r}: {ratio:.2f}:1")
    if seen["scroll"] > seen["width"]:
        found.append(f"scrolls sideways: {seen['scroll']} px in {width}")
    for button in seen["buttons"]:
        if not button["label"] or button["width"] < 40 or button["height"] < 30:
            found.append(f"button {button['label']!r} is {button['width']}x{button['height']}")
        if button["right"] > width:
            found.append(f"button {button['label']!r} ends at {button['right']} px")
    return found


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_mail_kind_reads_right_at_both_widths_with_and_without_its_style(
    chromium: Any, images: Images, screenshots: Path, kind: str, language: str
) -> None:
    site = replace(SITE, language=language, name="Еженедельник" if language == "ru" else SITE.name)
    html = mail_html(kind, site, images.base)
    buttons = {"issue": 3, "test": 3, "confirm": 1, "welcome": 1, "reconsent": 1}[kind]
    for width in WIDTHS:
        for styled in (True, False):
            name = f"mail-{kind}{'-ru' if language == 'ru' else ''}-{width}"
            picture = screenshots / f"{name}.png" if styled else None
            if not styled and kind == "issue" and width == 375:
                picture = screenshots / f"{name}-no-style.png"
            seen = look(chromium, html if styled else without_style(html), width, picture)
            assert problems(seen, width) == [], (kind, language, width, styled)
            assert len(seen["buttons"]) == buttons
    if kind in ("issue", "test"):
        assert "/wide.png" in images.requests and "/thumb.png" in images.requests
        blocked = mail_html(kind, site, "http://127.0.0.1:9")  # images off, or gone
        for width in WIDTHS:
            seen = look(chromium, blocked, width, None)
            assert problems(seen, width) == [], (kind, language, width, "images blocked")


def test_the_checks_fail_on_grey_text_a_blank_button_and_a_wide_table(chromium: Any) -> None:
    """The checks above can fail: each of the faults the issue found, put back."""
    html = (
        '<html><body style="background:#eeeeea">'
        '<p style="color:#999999">The postal address</p>'
        '<table><tr><td><a class="button" href="#" style="color:#fff;background:#fff">Yes</a>'
        "</td></tr></table>"
        '<table width="600"><tr><td>A 600 px container on a phone</td></tr></table>'
        "</body></html>"
    )
    found = problems(look(chromium, html, 375, None), 375)
    assert any(f.startswith("'The postal address': 2.") for f in found)
    assert any(f.startswith("'Yes': 1.00:1") for f in found)
    assert any(f.startswith("scrolls sideways") for f in found)
