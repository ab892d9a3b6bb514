"""Entity extraction: the regex table in six languages, spaCy on English only, overlaps, odd input.

No database fixtures. spaCy's small English model loads once for this module (a few seconds)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from models import entities
from models.entities import Entity, extract
from models.language import detect

TEST_SET = Path(__file__).resolve().parents[1] / "models" / "data" / "support_test.jsonl"

# (lang, text, type, matched text, normalized)
REGEX_TABLE = [
    ("en", "hey where is my order #48213? ordered monday", "order_id", "order #48213", "48213"),
    ("en", "Any news on order 55120 please", "order_id", "order 55120", "55120"),
    ("en", "my order number is 88812", "order_id", "order number is 88812", "88812"),
    ("en", "Ticket about AB-12345 again", "order_id", "AB-12345", "AB-12345"),
    ("en", "order 7781-ax never came", "order_id", "order 7781-ax", "7781-AX"),
    ("en", "mail Priya.R@Example.com", "email", "Priya.R@Example.com", "priya.r@example.com"),
    ("en", "call +44 (0)20 7946 0958 today", "phone", "+44 (0)20 7946 0958", "+442079460958"),
    ("en", "or (555) 123-4567 after 5", "phone", "(555) 123-4567", "5551234567"),
    ("en", "call me back on 07700 900123", "phone", "07700 900123", "07700900123"),
    ("en", "I was charged $12.50 twice", "money", "$12.50", "USD 12.50"),
    ("en", "refund of £1,234.56 please", "money", "£1,234.56", "GBP 1234.56"),
    ("en", "delivered on March 3rd, 2024", "date", "March 3rd, 2024", "2024-03-03"),
    ("en", "since 2024-03-12 nothing", "date", "2024-03-12", "2024-03-12"),
    ("en", "since 03/25/2024 nothing", "date", "03/25/2024", "2024-03-25"),
    ("es", "¿Dónde está mi pedido 48213?", "order_id", "pedido 48213", "48213"),
    ("es", "el pedido n.º 204-7713 llegó roto", "order_id", "pedido n.º 204-7713", "204-7713"),
    ("es", "me cobraron 12,50 EUR de más", "money", "12,50 EUR", "EUR 12.50"),
    ("es", "lo compré el 12 de marzo", "date", "12 de marzo", "--03-12"),
    ("es", "mi teléfono: 612 345 678", "phone", "612 345 678", "612345678"),
    ("es", "escribid a L.Mendez@hotmail.es", "email", "L.Mendez@hotmail.es", "l.mendez@hotmail.es"),
    ("pt", "a minha encomenda n.º 99812 não chegou", "order_id", "encomenda n.º 99812", "99812"),
    ("pt", "paguei R$ 30 no cartão", "money", "R$ 30", "BRL 30"),
    ("pt", "paguei R$ 1.480,90 no cartão", "money", "R$ 1.480,90", "BRL 1480.90"),
    ("pt", "desde 3 de março de 2024", "date", "3 de março de 2024", "2024-03-03"),
    ("pt", "celular +55 11 91234-5678", "phone", "+55 11 91234-5678", "+5511912345678"),
    ("fr", "ma commande n° 12345 est en retard", "order_id", "commande n° 12345", "12345"),
    ("fr", "j'ai payé € 12,50 de frais", "money", "€ 12,50", "EUR 12.50"),
    ("fr", "livrée le 1er mars", "date", "1er mars", "--03-01"),
    ("fr", "Tél. 06 12 34 56 78", "phone", "06 12 34 56 78", "0612345678"),
    ("de", "meine Bestellung Nr. 12345 fehlt", "order_id", "Bestellung Nr. 12345", "12345"),
    ("de", "Bestellnummer 22-7810 ist falsch", "order_id", "Bestellnummer 22-7810", "22-7810"),
    ("de", "1.234,56 € wurden abgebucht", "money", "1.234,56 €", "EUR 1234.56"),
    ("de", "bestellt am 12. März", "date", "12. März", "--03-12"),
    ("de", "Kündigung zum 31.12.2024 bitte", "date", "31.12.2024", "2024-12-31"),
    ("de", "unter 0151 2345678 zurückrufen", "phone", "0151 2345678", "01512345678"),
    ("it", "l'ordine 55120 non è arrivato", "order_id", "ordine 55120", "55120"),
    ("it", "ho pagato 30 euro", "money", "30 euro", "EUR 30"),
    ("it", "ordinato il 05/03/2024", "date", "05/03/2024", "2024-03-05"),
    ("it", "cellulare 0039 333 123 4567", "phone", "0039 333 123 4567", "+393331234567"),
]


@pytest.mark.parametrize(
    ("lang", "text", "kind", "span", "normalized"),
    REGEX_TABLE,
    ids=[f"{row[0]}-{row[2]}-{i}" for i, row in enumerate(REGEX_TABLE)],
)
def test_regex_table(lang, text, kind, span, normalized):
    found = [e for e in extract(text, lang) if e.source == "regex"]
    assert [(e.type, e.text, e.normalized) for e in found] == [(kind, span, normalized)]
    assert text[found[0].start : found[0].end] == span


@pytest.mark.parametrize(
    "text",
    [
        "my order status please",  # "order" without an id
        "I ordered 3 items 2 weeks ago",
        "pedido 12 de marzo",  # two digits: a date, not an id
        "version 1.2.3 and 3D print",
        "Error 500 on every page since 9am",
        "we have 2 real problems",
    ],
)
def test_no_regex_false_positives(text):
    assert [e for e in extract(text, None) if e.type in ("order_id", "phone", "money")] == []


def test_longer_match_wins_between_regexes():
    found = extract("write to order12345@shop.com", None)
    assert [(e.type, e.text) for e in found] == [("email", "order12345@shop.com")]


def test_spacy_finds_english_entities():
    text = "Hi, this is Priya Sharma. Amazon in London charged me twice last Thursday."
    found = {(e.type, e.text) for e in extract(text, "en") if e.source == "spacy"}
    assert {("person", "Priya Sharma"), ("org", "Amazon"), ("gpe", "London")} <= found
    assert ("date", "last Thursday") in found


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hola, soy María García de Madrid y mi pedido 48213 no llegó a Barcelona.", "es"),
        ("Bonjour, je suis Pierre Dupont de Paris, commande 12345.", "fr"),
        ("Hallo, hier ist Anna Müller aus Berlin.", "de"),
        ("Mike from Amazon in London", None),
    ],
)
def test_spacy_never_runs_on_other_languages(monkeypatch, text, lang):
    def refuse() -> object:
        raise AssertionError("spaCy was called on non-English text")

    monkeypatch.setattr(entities._SPACY, "get", refuse)
    assert all(e.source == "regex" for e in extract(text, lang))


def test_spanish_sentence_gets_no_spacy_entities():
    text = "Hola, soy María García de Madrid y mi pedido 48213 no llegó a Barcelona."
    assert detect(text).lang == "es"
    assert [e for e in extract(text, detect(text).lang) if e.source == "spacy"] == []


@pytest.mark.parametrize(
    "text",
    [
        "I was charged for order 55120 and order #48213, ref AB-12345",
        "Order G-20931 and order 7781-AX are both late",
        "Can you cancel order 5520 and keep order 5521?",
    ],
)
def test_order_ids_are_not_money_or_anything_else(text):
    found = extract(text, "en")
    orders = [e for e in found if e.type == "order_id"]
    assert orders
    for order in orders:
        overlapping = [e for e in found if e.start < order.end and order.start < e.end]
        assert overlapping == [order]
    assert not any(e.type in ("money", "cardinal") for e in found)


BAD_INPUTS = {
    "empty": "",
    "whitespace": " \n\t\r\n ",
    "emoji": "👍🎉🙏 😡",
    "binary": bytes(range(256)).decode("utf-8", errors="replace") * 64,
    "nul": "order #48213\x00 call\x00 +44 20 7946 0958\x00",
    "lone-surrogates": "\ud800 order #48213 from Amazon \udfff",
    "1MB": "Hello John, my order #48213 from Amazon cost $12.50 on March 3. " * 16_000,
    "1MB-digits": "1234567890 " * 100_000,
}


@pytest.mark.parametrize("lang", ["en", "es", None])
@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_never_raise(name, lang):
    text = BAD_INPUTS[name]
    found = extract(text, lang)
    assert all(isinstance(e, Entity) for e in found)
    assert all(text[e.start : e.end] == e.text for e in found)


def test_offsets_and_ordering_on_the_support_set():
    with TEST_SET.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows:
        found = extract(row["text"], row["lang"])
        assert found == sorted(found, key=lambda e: (e.start, e.end))
        for e in found:
            assert row["text"][e.start : e.end] == e.text
            assert e.source == "regex" or row["lang"] == "en"
        spans = [(e.start, e.end) for e in found]
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), row["text"]
