"""Synthetic support data for the benchmark: customers, conversations with their
messages, and tickets, generated row by row as tuples for COPY.

Ids are uuid7 built from each row's own timestamp, so they sort by creation time as the
API's keyset pagination expects; rows of the two tenants interleave in time."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
from tqdm import tqdm

from bench._corpus import TAGS, TextGen

# Channel types and how often customers come from each.
CHANNELS = (("whatsapp", 40), ("email", 30), ("web", 15), ("instagram", 10), ("api", 5))
_CHUNK = 20_000  # conversations per COPY round


def _ms(ts: float) -> int:
    return int(ts * 1000)


class Ids:
    """uuid7 from a given instant: seeded rows get ids in the order of their timestamps,
    as the API's keyset pagination expects, without calling os.urandom per row."""

    def __init__(self, rng: random.Random) -> None:
        self.bits = rng.getrandbits

    def at(self, ts: float) -> uuid.UUID:
        value = (_ms(ts) & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | self.bits(12) << 64
        return uuid.UUID(int=value | 0b10 << 62 | self.bits(62))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class TenantPlan:
    tenant_id: uuid.UUID
    tickets: int
    messages: int
    agents: int
    teams: int
    offset: int  # keeps identity values distinct between tenants
    user_ids: list[uuid.UUID] = field(default_factory=list)
    team_of: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    channel_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def conversations(self) -> int:
        return max(1, self.messages // 5)

    @property
    def customers(self) -> int:
        return max(1, int(self.conversations * 0.65))


@dataclass
class Conv:
    id: uuid.UUID
    ts: float
    customer: int
    status: str
    priority: str
    assignee: uuid.UUID | None
    team: uuid.UUID | None
    tags: list[str]
    subject: str
    body: str


class Seeder:
    def __init__(self, conn: asyncpg.Connection, seed: int = 7) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.text = TextGen(self.rng)
        self.np = np.random.default_rng(seed)
        self.now = time.time()
        self.start = self.now - 365 * 86400
        self.provider_seq = 0
        # Ticket links are copied last, once the indexes exist: the schema's triggers on
        # ticket_conversations read each linked ticket's messages.
        self.links: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def copy(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self.conn.copy_records_to_table(table, records=rows, columns=list(columns))

    async def people(self, plan: TenantPlan, password_hash: str) -> None:
        born = self.start - 30 * 86400
        teams = [(self.ids.at(born), f"Team {i + 1}") for i in range(plan.teams)]
        await self.copy(
            "teams",
            ("id", "tenant_id", "name", "description", "skills", "created_at", "updated_at"),
            [(t, plan.tenant_id, n, "", "[]", _dt(born), _dt(born)) for t, n in teams],
        )
        users, members = [], []
        for i in range(plan.agents):
            uid = self.ids.at(born + i)
            team = teams[i % len(teams)][0]
            plan.user_ids.append(uid)
            plan.team_of[uid] = team
            users.append(
                (
                    uid,
                    plan.tenant_id,
                    f"agent{i + 1}@{plan.offset}.bench.test",
                    f"Agent {i + 1}",
                    "agent",
                    password_hash,
                    True,
                    _dt(born),
                    _dt(born),
                )
            )
            members.append((team, uid))
        await self.copy(
            "users",
            (
                "id",
                "tenant_id",
                "email",
                "name",
                "role",
                "password_hash",
                "is_active",
                "created_at",
                "updated_at",
            ),
            users,
        )
        await self.copy("team_members", ("team_id", "user_id"), members)
        names = {
            "whatsapp": "WhatsApp Business",
            "email": "Support email",
            "web": "Web chat",
            "instagram": "Instagram DM",
            "api": "Integrations API",
        }
        channels = []
        for kind, _ in CHANNELS:
            cid = self.ids.at(born)
            plan.channel_ids.append(cid)
            channels.append(
                (cid, plan.tenant_id, kind, names[kind], "{}", True, _dt(born), _dt(born))
            )
        await self.copy(
            "channels",
            ("id", "tenant_id", "type", "name", "config", "is_active", "created_at", "updated_at"),
            channels,
        )

    def _identity(self, kind: str, k: int, name: str) -> tuple[str, str | None, str | None]:
        """(identity value, email, phone) of customer k on a channel type."""
        if kind == "whatsapp":
            digits = str(34_600_000_000 + k)
            return digits, None, "+" + digits
        if kind == "email":
            email = f"{name.replace(' ', '.').lower()}.{k}@example.com"
            return email, email, None
        if kind == "web":
            return f"visitor-{k:08x}", None, None
        if kind == "instagram":
            return str(17_840_000_000_000 + k), None, None
        return f"crm-{k}", None, None

    async def tenant(self, plan: TenantPlan, bar: tqdm[Any]) -> None:
        rng = self.rng
        n_conv, n_cust = plan.conversations, plan.customers
        kinds = [k for k, _ in CHANNELS]
        home = rng.choices(range(len(CHANNELS)), [w for _, w in CHANNELS], k=n_cust)
        lang = [self.text.language() for _ in range(n_cust)]
        conv_ts = sorted(rng.uniform(self.start, self.now - 86400) for _ in range(n_conv))
        conv_cust = [rng.randrange(n_cust) for _ in range(n_conv)]
        first_ts: dict[int, float] = {}
        last_conv: dict[int, int] = {}
        for i, c in enumerate(conv_cust):
            first_ts.setdefault(c, conv_ts[i])
            last_conv[c] = i

        cust_ids: list[uuid.UUID] = []
        customers, identities = [], []
        for k in range(n_cust):
            born = first_ts.get(k, rng.uniform(self.start, self.now)) - rng.uniform(0, 30 * 86400)
            cid = self.ids.at(born)
            cust_ids.append(cid)
            name = self.text.name()
            value, email, phone = self._identity(kinds[home[k]], plan.offset + k, name)
            attrs = '{"plan": "pro"}' if rng.random() < 0.2 else "{}"
            customers.append((cid, plan.tenant_id, name, email, phone, attrs, _dt(born), _dt(born)))
            identities.append(
                (self.ids.at(born), plan.tenant_id, cid, kinds[home[k]], value, _dt(born))
            )
        await self.copy(
            "customers",
            ("id", "tenant_id", "name", "email", "phone", "attributes", "created_at", "updated_at"),
            customers,
        )
        await self.copy(
            "customer_identities",
            ("id", "tenant_id", "customer_id", "kind", "value", "created_at"),
            identities,
        )

        # Messages per conversation: at least 1, skewed, summing exactly to the target.
        weights = self.np.lognormal(0.0, 0.8, n_conv)
        extra = self.np.multinomial(max(0, plan.messages - n_conv), weights / weights.sum())
        counts = (extra + 1).tolist()
        convs: list[Conv] = []
        for lo in range(0, n_conv, _CHUNK):
            conv_rows, msg_rows = [], []
            for i in range(lo, min(lo + _CHUNK, n_conv)):
                conv, conv_row, msgs = self._conversation(
                    plan,
                    i,
                    conv_ts[i],
                    conv_cust[i],
                    cust_ids,
                    home,
                    lang,
                    last=last_conv[conv_cust[i]] == i,
                    n_messages=counts[i],
                )
                convs.append(conv)
                conv_rows.append(conv_row)
                msg_rows.extend(msgs)
            await self.copy("conversations", CONV_COLUMNS, conv_rows)
            await self.copy("messages", MSG_COLUMNS, msg_rows)
            bar.update(len(msg_rows))
        self.links.extend(await self._tickets(plan, convs, cust_ids))

    def _conversation(
        self,
        plan: TenantPlan,
        i: int,
        ts: float,
        cust: int,
        cust_ids: list[uuid.UUID],
        home: list[int],
        lang: list[str],
        *,
        last: bool,
        n_messages: int,
    ) -> tuple[Conv, tuple[Any, ...], list[tuple[Any, ...]]]:
        rng = self.rng
        recent = ts > self.now - 45 * 86400
        if last and recent:
            status = rng.choices(("open", "pending", "snoozed", "resolved"), (55, 15, 5, 25))[0]
        elif last:
            status = rng.choices(("open", "pending", "resolved"), (4, 2, 94))[0]
        else:
            status = "resolved"
        assignee = (
            rng.choice(plan.user_ids)
            if rng.random() < (0.9 if status == "resolved" else 0.7)
            else None
        )
        team = plan.team_of[assignee] if assignee else None
        tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))
        priority = rng.choices(("low", "normal", "high", "urgent"), (20, 55, 20, 5))[0]
        language = lang[cust]
        order = self.text.order()
        subject, body = self.text.opening(language, order)
        channel = plan.channel_ids[home[cust]]
        conv_id = self.ids.at(ts)
        customer_id = cust_ids[cust]
        msgs: list[tuple[Any, ...]] = []
        t = ts
        inbound = True
        first_reply = last_in = None
        for j in range(n_messages):
            if j:
                t += rng.expovariate(1 / 1800)
                if rng.random() < 0.7:
                    inbound = not inbound
            if inbound:
                text = body if j == 0 else self.text.customer(language, order)
                self.provider_seq += 1
                provider: str | None = f"seed.{self.provider_seq}"
                sender, sender_type, direction, delivery = (
                    customer_id,
                    "customer",
                    "inbound",
                    "received",
                )
                last_in = t
            else:
                text = self.text.reply(language, order)
                provider = None
                sender = assignee or rng.choice(plan.user_ids)
                sender_type, direction, delivery = "agent", "outbound", "read"
                first_reply = first_reply or t
            at = _dt(t)
            msgs.append(
                (
                    self.ids.at(t),
                    plan.tenant_id,
                    conv_id,
                    channel,
                    direction,
                    sender_type,
                    sender,
                    text,
                    "text",
                    "[]",
                    provider,
                    delivery,
                    "{}",
                    at,
                    at,
                    at,
                )
            )
        snoozed = _dt(self.now + rng.uniform(3600, 3 * 86400)) if status == "snoozed" else None
        row = (
            conv_id,
            plan.tenant_id,
            customer_id,
            channel,
            status,
            priority,
            assignee,
            team,
            json.dumps(tags),
            subject,
            snoozed,
            _dt(t),
            _dt(last_in) if last_in else None,
            _dt(first_reply) if first_reply else None,
            n_messages,
            _dt(ts),
            _dt(t),
        )
        conv = Conv(conv_id, ts, cust, status, priority, assignee, team, tags, subject, body)
        return conv, row, msgs

    async def _tickets(
        self, plan: TenantPlan, convs: list[Conv], cust_ids: list[uuid.UUID]
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """COPY the tickets; returns their (ticket, conversation) links for later."""
        rng = self.rng
        linked = min(len(convs), int(plan.tickets * 0.95))
        sources: list[Conv | None] = [convs[i] for i in rng.sample(range(len(convs)), linked)]
        sources += [None] * (plan.tickets - linked)
        plans = []
        for conv in sources:
            if conv is None:  # a standalone ticket (email-to-ticket, phone call, ...)
                ts = rng.uniform(self.start, self.now - 3600)
                lang = self.text.language()
                subject, body = self.text.opening(lang, self.text.order())
                requester = rng.choice(cust_ids)
                open_status = ts > self.now - 45 * 86400
                agent = rng.choice(plan.user_ids) if rng.random() < 0.8 else None
                prio = rng.choices(("low", "normal", "high", "urgent"), (20, 55, 20, 5))[0]
                tags = rng.sample(TAGS, rng.choice((0, 1, 2)))
            else:
                ts = conv.ts + rng.uniform(60, 3600)
                subject, body, requester = conv.subject, conv.body, cust_ids[conv.customer]
                open_status = conv.status != "resolved"
                agent, prio, tags = conv.assignee, conv.priority, list(conv.tags)
            if open_status:
                status = rng.choices(("new", "open", "pending", "on_hold"), (25, 45, 20, 10))[0]
            else:
                status = rng.choices(("solved", "closed"), (40, 60))[0]
            plans.append((ts, conv, subject, body, requester, status, agent, prio, tags))
        plans.sort(key=lambda p: p[0])
        tickets, links = [], []
        for number, (ts, conv, subject, body, requester, status, agent, prio, tags) in enumerate(
            plans, start=1
        ):
            tid = self.ids.at(ts)
            done = ts + rng.uniform(3600, 5 * 86400)
            solved = _dt(done) if status in ("solved", "closed") else None
            closed = _dt(done + 4 * 86400) if status == "closed" else None
            updated = closed or solved or _dt(ts)
            kind = rng.choices(("question", "incident", "problem", "task"), (50, 25, 10, 15))[0]
            tickets.append(
                (
                    tid,
                    plan.tenant_id,
                    number,
                    subject,
                    body,
                    status,
                    prio,
                    kind,
                    requester,
                    agent,
                    plan.team_of[agent] if agent else None,
                    json.dumps(tags),
                    "{}",
                    1,
                    _dt(ts + rng.uniform(60, 7200)) if status != "new" else None,
                    solved,
                    closed,
                    False,
                    False,
                    _dt(ts),
                    updated,
                )
            )
            if conv is not None:
                links.append((tid, conv.id))
        await self.copy("tickets", TICKET_COLUMNS, tickets)
        await self.conn.execute(
            "UPDATE tenants SET next_ticket_number = $2 WHERE id = $1",
            plan.tenant_id,
            len(plans) + 1,
        )
        return links


CONV_COLUMNS = (
    "id", "tenant_id", "customer_id", "channel_id", "status", "priority", "assignee_id",
    "team_id", "tags", "subject", "snoozed_until", "last_message_at", "last_inbound_at",
    "first_reply_at", "message_count", "created_at", "updated_at",
)  # fmt: skip
MSG_COLUMNS = (
    "id", "tenant_id", "conversation_id", "channel_id", "direction", "sender_type",
    "sender_id", "text", "content_type", "attachments", "provider_message_id",
    "delivery_status", "metadata", "sent_at", "created_at", "updated_at",
)  # fmt: skip
TICKET_COLUMNS = (
    "id", "tenant_id", "number", "subject", "description", "status", "priority", "type",
    "requester_id", "assignee_id", "team_id", "tags", "custom_fields", "version",
    "first_responded_at", "solved_at", "closed_at", "first_response_breached",
    "resolution_breached", "created_at", "updated_at",
)  # fmt: skip
