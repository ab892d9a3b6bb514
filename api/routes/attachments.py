"""Attachments: upload a file to send with a reply, and download any file the tenant holds."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import Agent, RuntimeDep, SessionDep, Viewer
from api.errors import NotFound
from api.schemas.attachments import AttachmentPublic
from api.services import attachments
from core.storage import limits_of

router = APIRouter(prefix="/v1/attachments", tags=["attachments"])

Key = Annotated[
    str, Path(pattern=r"^[0-9a-f]{64}$", description="The SHA-256 of the file (lowercase hex).")
]
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [attachments.FIELD],
                    "properties": {attachments.FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
# Shown in the browser; anything else (HTML, SVG, PDF...) is a download, so a file a
# customer sent can never run script on the API's origin.
_INLINE = re.compile(r"^(image/(png|jpeg|gif|webp|bmp)|audio/.+|video/.+|text/plain)$")
# Content-addressed: the bytes under a key never change.
_CACHE = "private, max-age=31536000, immutable"


@router.post(
    "",
    response_model=AttachmentPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_attachment(
    request: Request, session: SessionDep, runtime: RuntimeDep, principal: Agent
) -> AttachmentPublic:
    """Upload one file (multipart/form-data, field `file`), to attach to a reply: 413 past
    the size limit, 415 for a type the storage settings do not allow."""
    # Parsed here, after authentication, rather than as a parameter (which FastAPI reads
    # before any dependency runs): an unauthenticated body is never spooled to disk.
    async with request.form(max_files=1, max_fields=10) as form:
        file = attachments.file_of(form)
        limits = limits_of(runtime.settings)
        return await attachments.upload(session, runtime.attachments, limits, principal, file)


@router.get(
    "/{key}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {}},
)
async def download_attachment(
    key: Key,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: Viewer,
    download: bool = False,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The file's bytes, if the tenant uploaded it or one of its messages carries it;
    `download=true` asks the browser to save it rather than show it."""
    found = await attachments.readable(session, principal.tenant_id, key)
    if found is None:
        raise NotFound("no attachment with this key")
    etag = f'"{key}"'
    headers = {"ETag": etag, "Cache-Control": _CACHE}
    if if_none_match and (if_none_match.strip() == "*" or etag in if_none_match):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        blob = await runtime.attachments.open(key)
    except KeyError:
        raise NotFound("the attachment's file is missing from storage") from None
    inline = not download and _INLINE.match(found.content_type) is not None
    headers |= {
        "Content-Length": str(blob.size),
        "Content-Disposition": _disposition("inline" if inline else "attachment", found.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return StreamingResponse(blob.chunks, media_type=found.content_type, headers=headers)


def _disposition(kind: str, filename: str) -> str:
    plain = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename)
    if plain == filename:
        return f'{kind}; filename="{plain}"'
    # RFC 6266: an ASCII fallback, and the real name in UTF-8 for clients that read it.
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"
