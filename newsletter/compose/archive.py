"""An issue for the public archive: as readers got it, with every reader-specific part
removed. No token in any link, no name (the greeting's fallback), no "you receive this
because … subscribed" line; the unsubscribe link becomes a link to sign up, and the page
gains its canonical address, its Open Graph description, and the sign-up form."""

from __future__ import annotations

import lxml.html

from newsletter.compose.markers import ReaderValues, RenderedIssue, personalise

_NOBODY = "archive-reader@archive.invalid"  # stands for the reader's address, then goes


def public_copy(
    rendered: RenderedIssue,
    *,
    page_url: str,
    signup_url: str,
    signup_words: str,
    head: str,
    foot: str,
) -> str:
    """The archive's page for one issue: `head` (canonical, Open Graph) joins the
    document's head and `foot` (the sign-up form) closes its body; both are HTML the
    caller rendered with autoescaping."""
    leave = f"{signup_url}#unsubscribe"  # marks the unsubscribe link, to be replaced
    values = ReaderValues(name="", email=_NOBODY, unsubscribe_url=leave, view_url=page_url)
    html, _text = personalise(rendered, values)
    document = lxml.html.document_fromstring(html)
    for link in list(document.iter("a")):
        if link.get("href") == leave:
            for child in list(link):
                link.remove(child)
            link.text, link.attrib["href"] = signup_words, signup_url
            if "target" in link.attrib:
                del link.attrib["target"]
    for element in list(document.iter()):
        parent = element.getparent()
        if _NOBODY in (element.text or "") and parent is not None:
            parent.remove(element)  # "… because … subscribed": no one did
    for name, html_part in (("head", head), ("body", foot)):
        where = document.find(name)
        assert where is not None  # lxml's document always has both
        for part in lxml.html.fragments_fromstring(html_part):
            if not isinstance(part, str):
                where.append(part)
    page: str = lxml.html.tostring(document, encoding="unicode")
    return "<!doctype html>\n" + page
