"""Clean analysis text from raw Reddit / forum text (HTML entities, markdown, URLs, mentions, emoji).

``clean_text(title, body)`` is the one function every model stage (topics, themes, ``themes predict``)
uses to turn raw fields into analysis text, so that a model sees the same text at training and at
prediction time. It keeps the words a person wrote and drops markup, quoted text of others, code,
links, usernames, removal markers and trailing edit notes.
"""

from __future__ import annotations

import html
import re
import unicodedata

REMOVED_MARKERS = frozenset({"[removed]", "[deleted]", "removed", "deleted"})

_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_USER = re.compile(r"(?<![\w/])/?u/[A-Za-z0-9_-]+")
_SUBREDDIT = re.compile(r"(?<![\w/])/?r/([A-Za-z0-9_]+)")
_QUOTE_LINE = re.compile(r"^\s*(?:>|&gt;).*$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$", re.MULTILINE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~|\^)(?=\S)|(?<=\S)(\*{1,3}|_{2,3}|~~)")
_INLINE_CODE = re.compile(r"`([^`]*)`")
_EDIT_LINE = re.compile(r"^\s*(?:\*\*|\*)?\s*(?:edit|update|eta|e)\s*\d*\s*(?:\*\*|\*)?\s*[:\-].*$",
                        re.IGNORECASE | re.MULTILINE)
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _strip_symbols(text: str) -> str:
    """Drop emoji and other pictographs (Unicode 'So' and 'Sk' symbols, variation selectors)."""
    if text.isascii():
        return text
    return "".join(" " if unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") or 0xFE00 <= ord(ch) <= 0xFE0F
                   else ch for ch in text)


def clean_markup(text: str | None) -> str:
    if not text:
        return ""
    text = html.unescape(html.unescape(text))
    if text.strip().lower() in REMOVED_MARKERS:
        return ""
    text = _ZERO_WIDTH.sub("", text)
    text = _CODE_FENCE.sub(" ", text)
    text = _QUOTE_LINE.sub(" ", text)
    text = _EDIT_LINE.sub(" ", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _USER.sub(" ", text)
    text = _SUBREDDIT.sub(r"\1", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARK.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = text.replace("|", " ").replace("&nbsp;", " ").replace("\\", "")
    text = _strip_symbols(text)
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n", text).strip()


def clean_text(title: str | None, body: str | None) -> str:
    """Title and body as one analysis text (title first, as a sentence of its own)."""
    title_text, body_text = clean_markup(title), clean_markup(body)
    if title_text and body_text:
        if body_text.startswith(title_text):  # exports that join title and body already
            return body_text
        separator = " " if title_text[-1:] in ".?!:" else ". "
        return title_text + separator + body_text
    return title_text or body_text
