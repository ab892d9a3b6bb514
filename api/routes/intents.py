"""A tenant's intent taxonomy: default intents on or off, and its own intents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.deps import Admin, SessionDep, Viewer
from api.schemas.intents import IntentCreate, IntentList, IntentPublic, IntentUpdate
from api.services import intents

router = APIRouter(prefix="/v1/intents", tags=["intents"])

NamePath = Annotated[str, Path(max_length=64)]


@router.get("", response_model=IntentList)
async def list_intents(session: SessionDep, principal: Viewer) -> IntentList:
    """The effective taxonomy: the 16 default intents with their switch, then custom ones."""
    return IntentList(items=await intents.list_intents(session, principal.tenant_id))


@router.post("", response_model=IntentPublic, status_code=status.HTTP_201_CREATED)
async def create_intent(body: IntentCreate, session: SessionDep, principal: Admin) -> IntentPublic:
    """Add a custom intent: a name, a description and at least 3 example messages."""
    return await intents.create_intent(session, principal.tenant_id, body)


@router.patch("/{name}", response_model=IntentPublic)
async def update_intent(
    name: NamePath, body: IntentUpdate, session: SessionDep, principal: Admin
) -> IntentPublic:
    """Switch an intent on or off; change a custom intent's description or examples."""
    return await intents.update_intent(session, principal.tenant_id, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_intent(name: NamePath, session: SessionDep, principal: Admin) -> None:
    """Remove a custom intent (default intents are switched off instead)."""
    await intents.delete_intent(session, principal.tenant_id, name)
