"""HTML bodies to plain text with the standard library's tokenizer: the text a person
reads, never markup, scripts or styles."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never shown as text.
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
# Elements rendered as their own paragraph (a blank line around them) or their own line.
_PARAGRAPHS = frozenset(
    {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p", "pre", "table", "ul"}
)
_LINES = frozenset(
    {
        "address", "article", "aside", "div", "dl", "dt", "dd", "fieldset", "figcaption",
        "figure", "footer", "form", "header", "li", "main", "nav", "section", "tr",
    }
)  # fmt: skip


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        # Text, and line breaks as ints (1: a new line, 2: a blank line), merged when rendered.
        self.parts: list[str | int] = []
        self.hidden = 0

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPHS:
            self.parts.append(2)
        elif tag in _LINES:
            self.parts.append(1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        else:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        else:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        else:
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            # Source whitespace (indentation, line wraps) is not rendered whitespace.
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        out: list[str] = []
        pending = 0
        for part in self.parts:
            if isinstance(part, int):
                pending = max(pending, part)
                continue
            if pending:
                out.append("\n" * pending)
                pending = 0
            out.append(part)
        return "".join(out)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in parser.text().splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
