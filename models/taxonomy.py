"""The default taxonomy every tenant starts with (`docs/taxonomy.md` in the shared docs): the
contract of the shipped intent head, its training examples and held-out tests.

Kept free of heavy imports: the API lists and validates intents without loading models."""

from __future__ import annotations

INTENT_LABELS: tuple[str, ...] = (
    "order_status",
    "delivery_issue",
    "return_refund",
    "cancel",
    "billing",
    "change_order",
    "account_access",
    "account_management",
    "product_info",
    "technical_issue",
    "complaint",
    "praise",
    "privacy",
    "human_agent",
    "greeting",
    "other",
)

# The sentiment and urgency heads' labels; urgency shares its scale with ticket priority.
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
URGENCY_LABELS: tuple[str, ...] = ("low", "normal", "high", "urgent")

# What the customer wants, per label.
INTENT_DESCRIPTIONS: dict[str, str] = {
    "order_status": "to know where an order is: tracking, expected delivery date",
    "delivery_issue": "help with a delivery that is late beyond the promise, lost, damaged, "
    "wrong or incomplete",
    "return_refund": "to return an item, or a refund, or the status of a refund",
    "cancel": "to cancel an order or a subscription/plan",
    "billing": "help with a double charge, wrong amount, invoice/receipt, failed or declined "
    "payment",
    "change_order": "to change the delivery address, items, size/colour or delivery slot",
    "account_access": "to get into an account: login failure, password reset, 2FA code, "
    "locked account",
    "account_management": "to update profile/email/phone, merge, close or delete an account "
    "(not framed as a privacy right)",
    "product_info": "pre-sales information: availability, specs, price, sizing, "
    "compatibility, shipping options",
    "technical_issue": "help with an app or website error, a bug, a crash, a feature not working",
    "complaint": "to express dissatisfaction with service, staff or quality that fits no more "
    "specific label",
    "praise": "to thank or compliment",
    "privacy": "a personal-data request framed as a privacy right (access, erasure), "
    "unsubscribe from marketing, consent",
    "human_agent": "a human, a manager or a call back, with no more specific request",
    "greeting": "nothing yet: hello, good morning, are you there",
    "other": "none of these: spam, job applications, partnership offers, wrong number, unrelated",
}
