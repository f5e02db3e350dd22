"""The editor's note as Markdown: what the README's note.md promises, in both parts."""

from __future__ import annotations

import lxml.html

from newsletter.compose.note import render_note
from newsletter.compose.rendering import render_issue

from .conftest import ROOT
from .test_messages import SITE, an_issue

NOTE = """Good morning. **The budget** vote ran
to its last hour.

- one [story](https://example.org/a)
- two

1. first
2. second

> *Thank you* for reading."""


def test_bold_links_lists_quotes_and_single_line_breaks_are_markdown() -> None:
    note = render_note(NOTE)
    page = lxml.html.fromstring(f"<div>{note.html}</div>")
    assert page.xpath("//strong/text()") == ["The budget"]
    assert page.xpath("//p[1]/br") and "to its last hour." in page.xpath("string(//p[1])")
    assert page.xpath("//ul/li/a/@href") == ["https://example.org/a"]
    assert page.xpath("//ol/li/text()") == ["first", "second"]
    assert page.xpath("//blockquote//em/text()") == ["Thank you"]
    assert note.paragraphs == (
        "Good morning. The budget vote ran\nto its last hour.",
        "- one story (https://example.org/a)\n- two",
        "1. first\n2. second",
        "> Thank you for reading.",
    )


def test_raw_html_stays_text_a_script_link_is_no_link_and_an_image_becomes_a_link() -> None:
    note = render_note(
        "<script>alert(1)</script> [x](javascript:alert(1)) ![map](https://e.org/m.png)"
    )
    page = lxml.html.fromstring(f"<div>{note.html}</div>")
    assert page.xpath("//script") == [] and "<script>alert(1)</script>" in page.text_content()
    assert page.xpath("//a/@href") == ["https://e.org/m.png"] and page.xpath("//img") == []
    assert note.paragraphs == (
        "<script>alert(1)</script> [x](javascript:alert(1)) map (https://e.org/m.png)",
    )


def test_the_issue_carries_the_note_in_both_parts() -> None:
    issue = an_issue()
    rendered = render_issue(issue.__class__(**{**issue.__dict__, "note": NOTE}), SITE,
                            ROOT / "templates")  # fmt: skip
    html = lxml.html.fromstring(rendered.html)
    bold = html.xpath("//strong[text()='The budget']")
    assert bold and html.xpath("//a[@href='https://example.org/a']/@style")  # inlined
    assert "**" not in rendered.text and "- one story (https://example.org/a)" in rendered.text
    assert "Good morning. The budget vote ran\nto its last hour." in rendered.text
