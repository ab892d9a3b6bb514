"""A WhatsApp Cloud API channel's config, validated when the channel is saved."""

from __future__ import annotations

from connectors.meta.config import DEFAULT_GRAPH_API, GraphId, MetaAppConfig

__all__ = ["DEFAULT_GRAPH_API", "WhatsAppConfig"]


class WhatsAppConfig(MetaAppConfig):
    phone_number_id: GraphId
    waba_id: GraphId
