"""Raw email the way real clients write it: a first message, Gmail's and Outlook's
replies, encoded headers in a legacy charset, HTML-only mail, an attachment, a vacation
auto-reply and a delivery-status bounce."""

from __future__ import annotations

import base64

SUPPORT = "support@acme-help.com"


def first_message(sender: str, message_id: str, subject: str = "Order 1042 never arrived") -> bytes:
    return (
        f"Return-Path: <{sender}>\r\n"
        f"From: Jane Doe <{sender}>\r\n"
        f"To: Acme Support <{SUPPORT}>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Tue, 24 Nov 2026 09:12:44 +0000\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"\r\n'
        "\r\n"
        "--000000000000a1b2c3\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
        "Hi, my order 1042 was due last week and still has not arrived.\r\n"
        "\r\n"
        "--000000000000a1b2c3\r\n"
        'Content-Type: text/html; charset="UTF-8"\r\n'
        "\r\n"
        '<div dir="ltr">Hi, my order 1042 was due last week and still has not arrived.</div>\r\n'
        "\r\n"
        "--000000000000a1b2c3--\r\n"
    ).encode()


def gmail_reply(sender: str, message_id: str, answering: str, references: list[str]) -> bytes:
    """Gmail: In-Reply-To and References, multipart/alternative, the quote after
    'On ... wrote:'."""
    refs = " ".join(f"<{r}>" for r in references)
    return (
        f"From: Jane Doe <{sender}>\r\n"
        f"Date: Wed, 25 Nov 2026 08:01:02 +0000\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Subject: Re: Order 1042 never arrived\r\n"
        f"To: Acme Support <{SUPPORT}>\r\n"
        f"In-Reply-To: <{answering}>\r\n"
        f"References: {refs}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="000000000000f00d"\r\n'
        "\r\n"
        "--000000000000f00d\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Still nothing today, can you check with the courier?\r\n"
        "\r\n"
        "On Tue, Nov 24, 2026 at 10:00 AM Acme Support <support@acme-help.com> wrote:\r\n"
        "> We are looking into it.\r\n"
        "\r\n"
        "--000000000000f00d\r\n"
        'Content-Type: text/html; charset="UTF-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        '<div dir=3D"ltr">Still nothing today, can you check with the courier?</div>=\r\n'
        '<div class=3D"gmail_quote"><blockquote>We are looking into it.</blockquote></div>\r\n'
        "\r\n"
        "--000000000000f00d--\r\n"
    ).encode()


def outlook_reply(sender: str, message_id: str, subject: str) -> bytes:
    """Outlook, through a gateway that dropped In-Reply-To and References: only
    Thread-Topic and Thread-Index, a German 'AW:' prefix, windows-1252 quoted-printable."""
    return (
        f'From: "Doe, Jane" <{sender}>\r\n'
        f"To: {SUPPORT}\r\n"
        f"Subject: AW: {subject}\r\n"
        "Thread-Topic: Order 1042 never arrived\r\n"
        "Thread-Index: AQHZ1k3L8yq7mV0b4E2m3Q==\r\n"
        "Date: Thu, 26 Nov 2026 07:30:00 +0100\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Accept-Language: de-DE, en-US\r\n"
        "X-MS-Has-Attach:\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="windows-1252"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Danke =96 the parcel is here now.\r\n"
        "\r\n"
        "________________________________\r\n"
        "Von: Acme Support <support@acme-help.com>\r\n"
        "Gesendet: Mittwoch, 25. November 2026 10:00\r\n"
    ).encode()


def encoded_latin1(sender: str, message_id: str) -> bytes:
    """RFC 2047 encoded-words in From and Subject, an ISO-8859-1 body."""
    return (
        f"From: =?ISO-8859-1?Q?Andr=E9_M=FCller?= <{sender}>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: =?ISO-8859-1?Q?R=FCcksendung_f=FCr_Bestellung?= =?UTF-8?B?IOKCrCA1MA==?=\r\n"
        "Date: Tue, 24 Nov 2026 11:00:00 +0100\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode() + "Grüße aus Köln, ich möchte die Ware zurückgeben.\r\n".encode("iso-8859-1")


def html_only(sender: str, message_id: str) -> bytes:
    return (
        f"From: {sender}\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Invoice question\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        "<html><head><style>p { color: red }</style>"
        "<script>alert('x')</script></head>"
        "<body><p>Why was I charged&nbsp;twice?</p><ul><li>Invoice A</li><li>Invoice B</li>"
        "</ul></body></html>\r\n"
    ).encode()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def with_attachment(
    sender: str, message_id: str, data: bytes = PDF, content_type: str = "application/pdf"
) -> bytes:
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (
        f"From: Jane Doe <{sender}>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Receipt attached\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="mix"\r\n'
        "\r\n"
        "--mix\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Here is the receipt.\r\n"
        "--mix\r\n"
        f'Content-Type: {content_type}; name="receipt.pdf"\r\n'
        'Content-Disposition: attachment; filename="receipt.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{encoded}"
        "--mix--\r\n"
    ).encode()


def vacation_reply(sender: str, message_id: str) -> bytes:
    return (
        f"From: Jane Doe <{sender}>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Automatic reply: Order 1042 never arrived\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "X-Auto-Response-Suppress: All\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "I am out of the office until Monday.\r\n"
    ).encode()


def bounce(message_id: str) -> bytes:
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        ' boundary="rep"\r\n'
        "\r\n"
        "--rep\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "The mail system could not deliver your message.\r\n"
        "--rep\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n"
        "\r\n"
        "Final-Recipient: rfc822; nobody@example.net\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "--rep--\r\n"
    ).encode()
