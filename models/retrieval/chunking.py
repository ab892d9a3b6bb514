"""Articles cut into passages the encoder sees whole: paragraphs first, then sentences, then
words, packed greedily up to a character budget, with a sentence-level overlap.

The budget is in *weighted* characters: e5 truncates at 512 XLM-R tokens, and Latin-script
support text runs at about 3.5-4.5 characters per token, while CJK, Thai and similar scripts
run near one character per token. Counting those characters three times keeps a chunk of any
script well inside the limit without running the tokenizer (which lives in the encoder
process, not here)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["ChunkingParams", "chunk_article", "passage_text", "text_weight"]

_PARAGRAPHS = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? (or the ellipsis, or the CJK full stop, exclamation and question
# marks), optionally closed by quotes or brackets, then space; a line break ends one too.
_SENTENCE_END = re.compile(
    r"(?<=[.!?\u2026])\s+"
    r"|(?<=[.!?\u2026][\"'\u201d\u2019)\]])\s+"
    r"|(?<=[\u3002\uff01\uff1f])\s*"  # CJK text puts no space after a sentence
    r"|\n+"
)
_DENSE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI", "LAO", "KHMER", "MYANMAR")


@dataclass(frozen=True, slots=True)
class ChunkingParams:
    """`max_chars`: the most weighted characters in a chunk body (the title is added on top,
    up to 300 more). `overlap_chars`: trailing sentences of a chunk, up to this much, start
    the next one, so that an answer cut by a boundary is whole in one of the two."""

    max_chars: int = 400
    overlap_chars: int = 120

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ValueError("max_chars must be at least 100")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise ValueError("overlap_chars must be between 0 and max_chars / 2")


def text_weight(text: str) -> int:
    """Length in characters, counting dense-script characters (about one token each) as 3."""
    if text.isascii():
        return len(text)
    return sum(3 if _dense(ch) else 1 for ch in text)


def _dense(ch: str) -> bool:
    if ord(ch) < 0x2E80:  # everything below the CJK radicals block is alphabetic or symbols
        return 0x0E00 <= ord(ch) <= 0x109F  # Thai, Lao, Tibetan, Myanmar
    name = unicodedata.name(ch, "")
    return name.startswith(_DENSE_SCRIPTS)


def passage_text(title: str, chunk: str) -> str:
    """What is embedded and indexed for a chunk: the article title gives every chunk its
    topic, which a chunk from the middle of an article often lacks."""
    title = title.strip()
    return f"{title}\n{chunk}" if title else chunk


def chunk_article(body: str, params: ChunkingParams | None = None) -> list[str]:
    """The article body as chunks of at most `params.max_chars` weighted characters each.

    Paragraphs stay whole when they fit; a paragraph that does not fit in what is left of
    the current chunk starts the next one. An empty body gives one empty chunk, so that the
    title alone is still searchable."""
    params = params or ChunkingParams()
    units = _units(body, params.max_chars)
    if not units:
        return [""]
    chunks: list[str] = []
    current: list[_Unit] = []
    for i, unit in enumerate(units):
        if current and unit[1]:
            # A paragraph that fits a chunk on its own is not split across two.
            paragraph = _paragraph_at(units, i)
            if (
                _weight(paragraph) <= params.max_chars
                and _weight(current + paragraph) > params.max_chars
            ):
                chunks.append(_join(current))
                current = _overlap(current, paragraph, params)
        if current and _weight([*current, unit]) > params.max_chars:
            chunks.append(_join(current))
            current = _overlap(current, [unit], params)
        current.append(unit)
    chunks.append(_join(current))
    return chunks


# A unit is (text, starts_paragraph): sentences, or word runs of an overlong sentence.
_Unit = tuple[str, bool]


def _units(body: str, max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in _PARAGRAPHS.split(body.replace("\r\n", "\n")):
        pieces = [s.strip() for s in _SENTENCE_END.split(paragraph.strip())]
        first = True
        for sentence in filter(None, pieces):
            for piece in _fit(sentence, max_chars):
                units.append((piece, first))
                first = False
    return units


def _fit(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than the budget as runs of whole words (a single word longer than
    the budget, such as a pasted URL, is cut)."""
    if text_weight(sentence) <= max_chars:
        return [sentence]
    runs: list[str] = []
    current = ""
    for word in sentence.split():
        while text_weight(word) > max_chars:
            cut = _prefix_within(word, max_chars)
            if current:
                runs.append(current)
                current = ""
            runs.append(word[:cut])
            word = word[cut:]
        joined = f"{current} {word}" if current else word
        if text_weight(joined) > max_chars:
            runs.append(current)
            joined = word
        current = joined
    if current:
        runs.append(current)
    return runs


def _prefix_within(word: str, max_chars: int) -> int:
    total = 0
    for i, ch in enumerate(word):
        total += text_weight(ch)
        if total > max_chars:
            return max(i, 1)
    return len(word)


def _paragraph_at(units: list[_Unit], start: int) -> list[_Unit]:
    out = [units[start]]
    for unit in units[start + 1 :]:
        if unit[1]:
            break
        out.append(unit)
    return out


def _overlap(previous: list[_Unit], following: list[_Unit], params: ChunkingParams) -> list[_Unit]:
    """Trailing units of the chunk just closed, up to `overlap_chars`, that still leave
    room for what follows."""
    carried: list[_Unit] = []
    for unit in reversed(previous):
        trial = [unit, *carried]
        if _weight(trial) > params.overlap_chars or _weight(trial + following) > params.max_chars:
            break
        carried = trial
    return carried


def _join(units: list[_Unit]) -> str:
    out = ""
    for i, (text, starts_paragraph) in enumerate(units):
        sep = "" if i == 0 else ("\n\n" if starts_paragraph else " ")
        out += sep + text
    return out


def _weight(units: list[_Unit]) -> int:
    return text_weight(_join(units))
