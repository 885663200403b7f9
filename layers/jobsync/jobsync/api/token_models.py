"""Request and answer shapes of the token management routes (`/api/tokens`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from jobsync.api.models import ApiModel, Strict
from jobsync.auth import Scope

TokenName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class TokenCreateBody(Strict):
    name: TokenName = Field(description="what the token is for (shown in listings)")
    scope: Scope = Field(description="read < operate < admin; each includes the ones before it")
    expires_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a time zone; the token is refused from then on"
    )


class TokenPath(Strict):
    token_id: str = Field(min_length=1, max_length=64)


class TokenOut(ApiModel):
    """What is kept about a token: never the token, never its digest."""

    model_config = ConfigDict(from_attributes=True, defer_build=True)

    token_id: str
    name: str
    scope: Scope
    created_at: str
    last_used_at: str | None
    expires_at: str | None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="the token itself: shown this once, stored only as its sha256 digest")


class TokenListOut(ApiModel):
    tokens: list[TokenOut]


class TokenRevokedOut(ApiModel):
    token: TokenOut
