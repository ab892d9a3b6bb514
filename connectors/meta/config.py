"""What every Meta channel's config holds: the app's credentials and the Graph API base."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, HttpUrl, StringConstraints, field_serializer

DEFAULT_GRAPH_API = "https://graph.facebook.com/v21.0"

Secret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
GraphId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,32}$")]


class MetaAppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token: Secret
    app_secret: Secret
    verify_token: Secret
    # Overridable so a self-hoster (a proxy) or a test (a local Graph API) points elsewhere.
    graph_api_base_url: HttpUrl = HttpUrl(DEFAULT_GRAPH_API)

    @field_serializer("graph_api_base_url")
    def _url(self, url: HttpUrl) -> str:
        return str(url).rstrip("/")
