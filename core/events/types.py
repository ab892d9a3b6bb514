"""Names of domain events and the Kafka topic each one is published on."""

from __future__ import annotations

from enum import StrEnum


class DomainEvent(StrEnum):
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_MERGED = "customer.merged"
    CUSTOMER_DELETED = "customer.deleted"
    CONVERSATION_OPENED = "conversation.opened"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_ASSIGNED = "conversation.assigned"
    CONVERSATION_STATUS_CHANGED = "conversation.status_changed"
    CONVERSATION_MERGED = "conversation.merged"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_SENT = "message.sent"
    MESSAGE_ANALYZED = "message.analyzed"
    NOTE_ADDED = "note.added"
    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    TICKET_STATUS_CHANGED = "ticket.status_changed"
    TICKET_ASSIGNED = "ticket.assigned"
    TICKET_CONVERSATION_LINKED = "ticket.conversation_linked"
    TICKET_SLA_BREACHED = "ticket.sla_breached"
    MODEL_PROMOTED = "model.promoted"
    MODEL_REJECTED = "model.rejected"
    MODEL_ROLLED_BACK = "model.rolled_back"


class Topic(StrEnum):
    MESSAGES_RECEIVED = "messages.received"
    MESSAGES_ANALYZED = "messages.analyzed"
    TICKETS_EVENTS = "tickets.events"
    DOMAIN_EVENTS = "domain.events"
    DEAD_LETTER = "dead-letter"


def topic_for(event: DomainEvent) -> Topic:
    if event in (DomainEvent.MESSAGE_RECEIVED, DomainEvent.MESSAGE_SENT):
        return Topic.MESSAGES_RECEIVED
    if event is DomainEvent.MESSAGE_ANALYZED:
        return Topic.MESSAGES_ANALYZED
    if event.value.startswith("ticket."):
        return Topic.TICKETS_EVENTS
    return Topic.DOMAIN_EVENTS
