"""Per channel type, the model its config must match; types without one take any dict."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from connectors.email.config import EmailConfig
from connectors.instagram.config import InstagramConfig
from connectors.web.config import WebConfig
from connectors.whatsapp.config import WhatsAppConfig
from core.domain.enums import ChannelType

CONFIG_MODELS: dict[ChannelType, type[BaseModel]] = {
    ChannelType.WHATSAPP: WhatsAppConfig,
    ChannelType.INSTAGRAM: InstagramConfig,
    ChannelType.EMAIL: EmailConfig,
    ChannelType.WEB: WebConfig,
}


def validate_config(channel_type: ChannelType, config: dict[str, Any]) -> dict[str, Any]:
    """The config as stored (defaults filled in); pydantic's ValidationError when it does
    not match the type's model."""
    model = CONFIG_MODELS.get(channel_type)
    if model is None:
        return config
    return model.model_validate(config).model_dump(mode="json")
