"""The email parser and thread helpers on their own: edge cases of real mail."""

from __future__ import annotations

import hashlib

import pytest

from connectors.email.html_text import html_to_text
from connectors.email.parse import MalformedEmail, parse_email
from connectors.email.quotes import trim_quoted
from connectors.email.threading import message_ids, normalized_subject, reply_subject
from tests import email_fixtures as mail


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Order 1042", "order 1042"),
        ("RE: AW: Fwd: Order  1042", "order 1042"),
        ("WG: SV: Re[2]: Order 1042", "order 1042"),
        ("[Acme #12] Re: Order 1042", "order 1042"),
        ("Antw: order 1042", "order 1042"),
        ("Order 1042", "order 1042"),
        ("Reorder 1042", "reorder 1042"),
    ],
)
def test_subject_prefixes_are_removed(subject: str, expected: str) -> None:
    assert normalized_subject(subject) == expected


def test_reply_subject_does_not_stack() -> None:
    assert reply_subject("RE: Re: Order") == "Re: Order"
    assert reply_subject("Order") == "Re: Order"
    assert reply_subject(None) == "Re:"


def test_message_ids() -> None:
    assert message_ids("<a@x> <b@y>\r\n <c@z>") == ["a@x", "b@y", "c@z"]
    assert message_ids("bare@id") == ["bare@id"]
    assert message_ids(None) == []


def test_unknown_charset_and_missing_message_id_still_parse() -> None:
    raw = (
        b"From: x@example.com\r\nSubject: hi\r\n"
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\ncaf\xc3\xa9\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.text == "café"
    assert parsed.message_id == f"sha256-{hashlib.sha256(raw).hexdigest()}@relaydesk"


def test_attached_message_is_one_attachment_and_thread_ids_are_ordered() -> None:
    inner = mail.first_message("a@example.com", "inner@x")
    raw = (
        b"From: b@example.com\r\nMessage-ID: <outer@x>\r\nIn-Reply-To: <p@x>\r\n"
        b"References: <r1@x> <r2@x> <p@x>\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.text == "see attached"
    [attached] = parsed.attachments
    assert attached.content_type == "message/rfc822"
    assert b"Order 1042" in attached.data
    assert parsed.thread_ids == ["p@x", "r2@x", "r1@x"]


def test_no_sender_is_malformed() -> None:
    with pytest.raises(MalformedEmail):
        parse_email(b"Subject: no sender\r\n\r\nbody\r\n")
    with pytest.raises(MalformedEmail):
        parse_email(b"")


def test_automatic_kinds() -> None:
    assert parse_email(mail.vacation_reply("a@example.com", "v@x")).automatic == "auto_reply"
    assert parse_email(mail.bounce("b@x")).automatic == "bounce"
    assert parse_email(mail.first_message("a@example.com", "m@x")).automatic is None


def test_html_to_text_keeps_structure_and_drops_code() -> None:
    html = (
        "<style>.x{}</style><h1>Title</h1><p>One<br>Two</p><table><tr><td>a</td><td>b</td>"
        "</tr></table><script>evil()</script>&lt;tag&gt;"
    )
    assert html_to_text(html) == "Title\n\nOne\nTwo\n\na b\n\n<tag>"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Thanks!\n\nOn Tue, Nov 24, 2026 at 10:00 AM Acme <s@x> wrote:\n> old", "Thanks!"),
        ("Danke\n\nAm 24.11.2026 um 10:00 schrieb Acme <s@x>:\n> alt", "Danke"),
        ("Ok\n-----Original Message-----\nFrom: s@x\n", "Ok"),
        ("Ok\n________________________________\nVon: Acme\n", "Ok"),
        ("Fine\n\n> quoted\n> more\n", "Fine"),
    ],
)
def test_quoted_replies_are_trimmed(text: str, kept: str) -> None:
    assert trim_quoted(text) == (kept, True)


def test_inline_answers_and_bare_quotes_are_kept_whole() -> None:
    inline = "> question one\nanswer one\n> question two\nanswer two"
    assert trim_quoted(inline) == (inline, False)
    only_quote = "On Tue, Nov 24 Acme <s@x> wrote:\n> old"
    assert trim_quoted(only_quote) == (only_quote, False)
