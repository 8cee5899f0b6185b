"""HTML (Discourse ``cooked`` posts, WordPress ``content.rendered``, feed entries) to the plain text the lake keeps.

The lake's ``body`` is what a person wrote, as text: paragraphs become blank-line-separated blocks, list
items ``- `` lines, headings their own lines, links their text, images their alt text (emoji images
dropped), ``<br>`` a line break, entities decoded. So ``edumine.models.text.clean.clean_text`` treats forum and
blog posts like Reddit's markdown: quoted text of others becomes ``> `` lines and code a fenced block,
both of which cleaning drops; a quote's "name said:" header is dropped; mentions (``@name`` links)
become ``u/name`` so that ingest pseudonymises them like Reddit mentions. Scripts, styles, iframes and
forms are removed. Only the standard library's parser is used (tolerant of broken markup).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset({"p", "div", "section", "article", "header", "footer", "figure", "figcaption", "table", "tr",
                    "ul", "ol", "dl", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "details", "summary", "hr",
                    "main", "aside", "nav"})
_SKIP = frozenset({"script", "style", "iframe", "noscript", "template", "form", "button", "svg", "object"})
_VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "source", "wbr", "area", "col", "embed"})
_NAME = re.compile(r"^@?([A-Za-z0-9_.-]{2,40})$")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0            # depth inside elements whose text is dropped
        self.quote = 0           # depth inside blockquotes
        self.pre = 0
        self.stack: list[tuple[str, str]] = []  # (tag, role) of open elements that change rendering
        self.mention: str | None = None

    # -- helpers ----------------------------------------------------------------------------------
    def newline(self, blank: bool = False) -> None:
        self.out.append("\n\n" if blank else "\n")
        if self.quote:
            self.out.append("> " * self.quote)

    def text(self, data: str) -> None:
        if self.pre:
            prefix = "> " * self.quote
            self.out.append(data.replace("\n", "\n" + prefix) if prefix else data)
        else:
            self.out.append(re.sub(r"\s+", " ", data))

    # -- parser callbacks -------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        classes = set(attr.get("class", "").split())
        if tag in _VOID:
            if self.skip:
                return
            if tag == "br":
                self.newline()
            elif tag == "hr":
                self.newline(blank=True)
            elif tag == "img" and not classes & {"emoji", "avatar"} and attr.get("alt"):
                alt = attr["alt"].strip()
                if alt and not (alt.startswith(":") and alt.endswith(":")):
                    self.out.append(f" {alt} ")
            return
        role = ""
        if self.skip or tag in _SKIP or (tag == "div" and classes & {"title", "quote-controls"} and self.quote):
            role = "skip"
            self.skip += 1
        elif tag == "blockquote" or (tag == "aside" and "quote" in classes):
            role = "quote"
            self.quote += 1
            self.newline(blank=True)
        elif tag in ("pre",):
            role = "pre"
            self.pre += 1
            self.newline(blank=True)
            self.out.append("```\n")
        elif tag == "li":
            self.newline()
            self.out.append("- ")
        elif tag == "a" and ("mention" in classes or attr.get("href", "").startswith("/u/")):
            role = "mention"
            self.mention = ""
        elif tag in _BLOCK:
            self.newline(blank=True)
        elif tag in ("td", "th"):
            self.out.append(" ")
        self.stack.append((tag, role))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # Close up to the matching open tag (tolerates unclosed <p>, <li>, ...).
        if not any(open_tag == tag for open_tag, _ in self.stack):
            return
        while self.stack:
            open_tag, role = self.stack.pop()
            self._close(open_tag, role)
            if open_tag == tag:
                break

    def _close(self, tag: str, role: str) -> None:
        if role == "skip":
            self.skip -= 1
        elif role == "quote":
            self.quote -= 1
            self.newline(blank=True)
        elif role == "pre":
            self.out.append("\n```")
            self.pre -= 1
            self.newline(blank=True)
        elif role == "mention":
            name = _NAME.match((self.mention or "").strip())
            self.out.append(f"u/{name.group(1)}" if name else (self.mention or ""))
            self.mention = None
        elif tag in _BLOCK:
            self.newline(blank=True)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.mention is not None:
            self.mention += data
            return
        self.text(data)


_SPACES = re.compile(r"[ \t]+")
_LINE_EDGES = re.compile(r"[ \t]*\n[ \t]*")


def html_to_text(html: str | None) -> str | None:
    """Plain text of an HTML fragment; None for None, '' for markup without text."""
    if html is None:
        return None
    if "<" not in html and "&" not in html:
        return html.strip()
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out).replace("\xa0", " ")
    text = _SPACES.sub(" ", text)
    text = _LINE_EDGES.sub("\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    # Drop quote lines left empty ("> > ") and collapse runs of blank lines.
    out: list[str] = []
    for line in text.split("\n"):
        if not line.replace(">", "").strip():
            if out and out[-1] != "":
                out.append("")
            continue
        out.append(line)
    return "\n".join(out).strip()
