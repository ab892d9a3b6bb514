"""A WhatsApp Cloud API channel's config, validated when the channel is saved."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, HttpUrl, StringConstraints, field_serializer

DEFAULT_GRAPH_API = "https://graph.facebook.com/v21.0"

Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
GraphId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]


class WhatsAppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_number_id: GraphId
    waba_id: GraphId
    access_token: Secret
    app_secret: Secret
    verify_token: Secret
    # Overridable so a self-hoster (a proxy) or a test (a local Graph API) points elsewhere.
    graph_api_base_url: HttpUrl = HttpUrl(DEFAULT_GRAPH_API)

    @field_serializer("graph_api_base_url")
    def _url(self, url: HttpUrl) -> str:
        return str(url).rstrip("/")
