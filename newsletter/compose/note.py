"""The editor's note, written in Markdown (CommonMark): **bold**, *italic*, [links](…),
lists, quotes, and a single line break kept as one. Raw HTML is shown as the text it is,
and an image becomes a link to it: the note is the editor's words, and the mail's layout
is the templates'. The text part gets the same note as plain text, a link as "its words
(its address)"."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Note:
    html: Markup  # for the HTML part: paragraphs and lists with the note's classes
    paragraphs: tuple[str, ...]  # for the text part: one plain-text block each


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    parser.disable(["html_block", "html_inline"])

    def image_as_link(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        """An image in the note becomes a link to it: the layout's images are the
        articles', sized by the templates."""
        token = tokens[idx]
        src = escape(str(token.attrGet("src") or ""))
        words = escape(token.content or src)
        return f'<a href="{src}">{words}</a>'

    parser.add_render_rule("image", image_as_link)
    return parser


_CLASSES = {
    "<p>": '<p class="note-paragraph">',
    "<ul>": '<ul class="note-list">',
    "<ol>": '<ol class="note-list">',
    "<a ": '<a class="note-link" ',
    "<blockquote>": '<blockquote class="note-quote">',
}


def render_note(source: str) -> Note:
    if not source.strip():
        return Note(Markup(""), ())
    parser = _parser()
    html = parser.render(source)
    for plain, classed in _CLASSES.items():
        html = html.replace(plain, classed)
    return Note(Markup(html), tuple(_blocks(parser.parse(source))))


def _blocks(tokens: list[Any]) -> list[str]:
    """The note as plain-text blocks: a paragraph, a list (one "- " or "1. " line per
    item), a heading or a quote each."""
    blocks: list[str] = []
    lines: list[str] = []
    counters: list[int | None] = []  # one per open list: None for bullets, else the number
    quote = 0
    for token in tokens:
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            start = token.attrGet("start")
            counters.append(None if kind == "bullet_list_open" else int(start or 1))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            counters.pop()
            if not counters and lines:
                blocks.append("\n".join(lines))
                lines = []
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "inline":
            text = _inline(token.children or [])
            if counters:
                depth = "  " * (len(counters) - 1)
                number = counters[-1]
                marker = "- " if number is None else f"{number}. "
                if number is not None:
                    counters[-1] = number + 1
                lines.append(depth + marker + text.replace("\n", "\n" + depth + "  "))
            else:
                prefix = "> " * quote
                blocks.append(prefix + text.replace("\n", "\n" + prefix))
        elif kind == "code_block" or kind == "fence":
            blocks.append(token.content.rstrip("\n"))
        elif kind == "hr":
            blocks.append("----")
    if lines:
        blocks.append("\n".join(lines))
    return blocks


def _inline(children: list[Any]) -> str:
    out: list[str] = []
    href: list[str] = []
    start: list[int] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "image":
            src = str(child.attrGet("src") or "")
            out.append(f"{child.content} ({src})" if child.content else src)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type == "link_open":
            href.append(str(child.attrGet("href") or ""))
            start.append(len(out))
        elif child.type == "link_close" and href:
            target, first = href.pop(), start.pop()
            words = "".join(out[first:])
            if target and target not in (words, f"mailto:{words}"):
                out.append(f" ({target})")
    return "".join(out).strip()
