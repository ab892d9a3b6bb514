"""A realistic demo tenant: the first thing a newcomer sees."""

from __future__ import annotations

import secrets
from datetime import timedelta

from api.schemas.conversations import (
    AssignRequest,
    InboundCustomer,
    InboundMessage,
    NoteCreate,
    ReplyCreate,
)
from api.schemas.customers import ChannelCreate, IdentityIn
from api.schemas.tenancy import TeamCreate, UserCreate
from api.schemas.tickets import SlaPolicyCreate, TicketCreate, TicketUpdate
from api.services import conversations, inbound, tenancy, tickets
from api.services.settings_objects import save_channel, save_sla_policy
from core.db.types import utcnow
from core.domain.enums import ChannelType, IdentityKind, Priority, Role, TicketStatus
from core.events.store import EventContext, EventRecorder
from core.runtime import Runtime
from core.settings import Settings

AGENTS = [
    ("Lucía Fernández", "lucia", Role.AGENT),
    ("Tom Becker", "tom", Role.AGENT),
    ("Amira Haddad", "amira", Role.AGENT),
    ("Olivia Reporting", "olivia", Role.VIEWER),
]


def _demo_config(kind: ChannelType) -> dict[str, str]:
    """A valid config for a channel type that needs one. The demo WhatsApp number and
    Instagram account are not connected to Meta: their ids are placeholders and their
    secrets random, so a reply sent there fails with the provider's error shown on the
    message, which is the truth."""
    meta = {
        "access_token": secrets.token_urlsafe(24),
        "app_secret": secrets.token_hex(16),
        "verify_token": secrets.token_urlsafe(12),
    }
    if kind is ChannelType.WHATSAPP:
        return {"phone_number_id": "100000000000001", "waba_id": "100000000000002", **meta}
    if kind is ChannelType.INSTAGRAM:
        return {"ig_user_id": "17800000000000001", **meta}
    if kind is ChannelType.EMAIL:
        # No mailbox to poll and no SMTP server: replies stay queued.
        return {"address": "support@example.com", "display_name": "Demo Support"}
    if kind is ChannelType.WEB:
        # Any site may embed it; the visitor token secret is generated on save.
        return {"title": "Demo Support", "welcome_text": "Hi! Ask us anything."}
    return {}


# (channel, identity, customer name, language, messages, ticket status or None)
THREADS: list[tuple[ChannelType, str, str, list[str], TicketStatus | None, Priority]] = [
    (
        ChannelType.WHATSAPP,
        "+34 612 345 678",
        "Carmen Ruiz",
        [
            "Hola, mi pedido #48213 no ha llegado todavía y ya pasaron 10 días.",
            "¿Me podéis decir dónde está?",
        ],
        TicketStatus.NEW,
        Priority.HIGH,
    ),
    (
        ChannelType.WHATSAPP,
        "+55 11 98765 4321",
        "João Silva",
        [
            "Oi! Fui cobrado duas vezes pela assinatura este mês.",
            "Preciso do reembolso urgente, por favor.",
        ],
        TicketStatus.OPEN,
        Priority.URGENT,
    ),
    (
        ChannelType.INSTAGRAM,
        "17841400000000001",
        "Chloé Martin",
        ["Bonjour, est-ce que la veste en lin existe en taille 38 ?"],
        None,
        Priority.NORMAL,
    ),
    (
        ChannelType.EMAIL,
        "klaus.weber@example.de",
        "Klaus Weber",
        [
            "Guten Tag, ich kann mich seit dem Update nicht mehr in mein Konto einloggen.",
            "Das Passwort-Zurücksetzen schickt keine E-Mail.",
        ],
        TicketStatus.PENDING,
        Priority.HIGH,
    ),
    (
        ChannelType.WEB,
        "visitor-7f3a",
        "Giulia Rossi",
        ["Ciao, vorrei cambiare l'indirizzo di consegna dell'ordine 55120."],
        TicketStatus.ON_HOLD,
        Priority.NORMAL,
    ),
    (
        ChannelType.EMAIL,
        "sarah.j@example.com",
        "Sarah Johnson",
        [
            "Hi, the blender I received is making a burning smell after two uses.",
            "I'd like to return it for a refund.",
        ],
        TicketStatus.SOLVED,
        Priority.NORMAL,
    ),
    (
        ChannelType.API,
        "crm-10042",
        "Michael Brown",
        ["Please cancel my order 77801, I ordered the wrong size."],
        TicketStatus.CLOSED,
        Priority.LOW,
    ),
    (
        ChannelType.WHATSAPP,
        "+1 415 555 0199",
        "Emily Chen",
        ["Just wanted to say your support team was amazing yesterday. Thank you!"],
        None,
        Priority.LOW,
    ),
    (
        ChannelType.WEB,
        "visitor-9b21",
        "Ahmed Karim",
        ["I want to speak to a human agent, the bot keeps looping."],
        TicketStatus.OPEN,
        Priority.HIGH,
    ),
    (
        ChannelType.INSTAGRAM,
        "17841400000000002",
        "Inês Costa",
        ["Olá, vocês entregam em Portugal? Quanto custa o envio?"],
        None,
        Priority.NORMAL,
    ),
]

# A legal path through the status life cycle to each target status.
PATHS = {
    TicketStatus.NEW: [],
    TicketStatus.OPEN: [TicketStatus.OPEN],
    TicketStatus.PENDING: [TicketStatus.OPEN, TicketStatus.PENDING],
    TicketStatus.ON_HOLD: [TicketStatus.OPEN, TicketStatus.ON_HOLD],
    TicketStatus.SOLVED: [TicketStatus.OPEN, TicketStatus.SOLVED],
    TicketStatus.CLOSED: [TicketStatus.OPEN, TicketStatus.SOLVED, TicketStatus.CLOSED],
}


async def seed_demo(settings: Settings, name: str, admin_password: str | None = None) -> list[str]:
    runtime = Runtime.build(settings)
    password = admin_password or secrets.token_urlsafe(12)
    agent_password = secrets.token_urlsafe(12)
    try:
        async with runtime.sessions() as session:
            boot = await tenancy.bootstrap_tenant(
                session,
                name=name,
                admin_email=f"admin@{boot_domain(name)}",
                admin_password=password,
            )
            tenant_id = boot.tenant.id
            recorder = EventRecorder(session, EventContext(actor_type="system", actor_id="demo"))
            agents = [
                await tenancy.create_user(
                    session,
                    tenant_id,
                    UserCreate(
                        email=f"{handle}@{boot_domain(name)}",
                        name=full,
                        role=role,
                        password=agent_password,
                    ),
                )
                for full, handle, role in AGENTS
            ]
            await tenancy.save_team(
                session,
                tenant_id,
                TeamCreate(
                    name="Billing & Orders",
                    skills=["billing", "return_refund", "order_status", "es", "pt"],
                    member_ids=[agents[0].id, agents[2].id],
                ),
            )
            tech = await tenancy.save_team(
                session,
                tenant_id,
                TeamCreate(
                    name="Technical",
                    skills=["technical_issue", "account_access", "de", "en"],
                    member_ids=[agents[1].id],
                ),
            )
            await save_sla_policy(
                session,
                tenant_id,
                SlaPolicyCreate.model_validate(
                    {
                        "name": "Standard (business hours, Madrid)",
                        "is_default": True,
                        "targets": {
                            "urgent": {"first_response_minutes": 30, "resolution_minutes": 240},
                            "high": {"first_response_minutes": 60, "resolution_minutes": 480},
                            "normal": {"first_response_minutes": 240, "resolution_minutes": 1440},
                            "low": {"first_response_minutes": 480, "resolution_minutes": 2880},
                        },
                        "business_hours": {
                            "timezone": "Europe/Madrid",
                            "hours": {
                                d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
                            },
                        },
                    }
                ),
            )
            channels = {}
            for kind in ChannelType:
                channels[kind] = await save_channel(
                    session,
                    tenant_id,
                    ChannelCreate(
                        type=kind, name=f"{kind.value.title()} (demo)", config=_demo_config(kind)
                    ),
                )
            start = utcnow() - timedelta(hours=len(THREADS) * 3)
            for index, (kind, identity, customer, texts, status, priority) in enumerate(THREADS):
                conversation_id = None
                for n, text in enumerate(texts):
                    outcome = await inbound.receive(
                        session,
                        recorder,
                        tenant_id,
                        InboundMessage(
                            channel_id=channels[kind].id,
                            customer=InboundCustomer(
                                identity=IdentityIn(kind=_identity_kind(kind), value=identity),
                                name=customer,
                            ),
                            text=text,
                            provider_message_id=f"demo-{index}-{n}",
                            sent_at=start + timedelta(hours=index * 3, minutes=n * 2),
                        ),
                    )
                    conversation_id = outcome.conversation_id
                assert conversation_id is not None
                agent = agents[index % 3]
                await conversations.assign(
                    session,
                    recorder,
                    tenant_id,
                    conversation_id,
                    AssignRequest(assignee_id=agent.id),
                )
                if status is None:
                    continue
                await conversations.reply(
                    session,
                    recorder,
                    tenant_id,
                    conversation_id,
                    agent.id,
                    ReplyCreate(text="Thanks for reaching out, I'm looking into it now."),
                )
                ticket = await tickets.create_ticket(
                    session,
                    recorder,
                    tenant_id,
                    TicketCreate(
                        conversation_id=conversation_id,
                        priority=priority,
                        assignee_id=agent.id,
                        team_id=tech.id if kind is ChannelType.EMAIL else None,
                        tags=["demo", kind.value],
                    ),
                )
                for step in PATHS[status]:
                    ticket = await tickets.update_ticket(
                        session, recorder, tenant_id, ticket.id, TicketUpdate(status=step)
                    )
                if status is TicketStatus.PENDING:
                    await conversations.add_note(
                        session,
                        recorder,
                        tenant_id,
                        conversation_id,
                        agent.id,
                        NoteCreate(body="Asked engineering whether the reset mails bounce."),
                    )
        web_demo = f"/widget/{channels[ChannelType.WEB].id}/demo"
    finally:
        await runtime.close()
    domain = boot_domain(name)
    return [
        f"demo tenant {name!r} created: {len(THREADS)} conversations, tickets in every status",
        f"admin sign-in: admin@{domain} / {password}",
        f"agent sign-in: lucia@{domain} (also tom@, amira@; olivia@ reads only) / {agent_password}",
        f"admin API key: {boot.api_key}",
        f"web chat widget demo page: <the API's address>{web_demo}",
    ]


def boot_domain(name: str) -> str:
    return f"{tenancy.slugify(name)}.relaydesk.local"


def _identity_kind(kind: ChannelType) -> IdentityKind:
    from core.domain.enums import DEFAULT_IDENTITY

    return DEFAULT_IDENTITY[kind]
