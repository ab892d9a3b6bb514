"""An Instagram messaging channel's config, validated when the channel is saved."""

from __future__ import annotations

from connectors.meta.config import GraphId, MetaAppConfig


class InstagramConfig(MetaAppConfig):
    # The professional account's id: replies go to /{ig_user_id}/messages.
    ig_user_id: GraphId
