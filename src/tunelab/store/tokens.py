"""API bearer tokens: created once, stored only as SHA-256, checked in constant time.

A token is ``tl_`` + 32 random URL-safe bytes; only its hash reaches the
database, so a leaked database does not leak working tokens. Scopes:
``read`` (look), ``train`` (create and control jobs, upload data), ``admin``
(everything, including tokens and trust_remote_code).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunelab.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from tunelab.store.models import ApiToken, utcnow

SCOPES = ("read", "train", "admin")
# admin implies train implies read
_IMPLIED = {"admin": {"admin", "train", "read"}, "train": {"train", "read"}, "read": {"read"}}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, name: str, scopes: Sequence[str] = ("read", "train")
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret, which is shown this once only."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"unknown scopes {unknown or []}", f"use some of: {', '.join(SCOPES)}")
    secret = "tl_" + secrets.token_urlsafe(32)
    row = ApiToken(
        id=f"tok-{uuid.uuid4().hex[:12]}",
        name=name,
        token_hash=hash_token(secret),
        scopes=sorted(set(scopes)),
    )
    session.add(row)
    session.commit()
    return row, secret


def verify_token(session: Session, secret: str, scope: str = "read") -> ApiToken:
    """The live token for ``secret`` with ``scope``, else Unauthorized (401) / Forbidden (403)."""
    digest = hash_token(secret or "")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    # Compare again in constant time so the lookup itself reveals nothing usable.
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at:
        raise Unauthorized(
            "missing, unknown or revoked API token",
            "send `Authorization: Bearer <token>`; create one with `tunelab tokens create`",
        )
    granted = set().union(*(_IMPLIED.get(s, set()) for s in row.scopes))
    if scope not in granted:
        raise Forbidden(
            f"token {row.name!r} lacks the {scope!r} scope",
            f"create a token with `--scope {scope}`",
        )
    row.last_used_at = utcnow()
    session.commit()
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))


def revoke_token(session: Session, token_id: str) -> ApiToken:
    """Revoke by id or name; revoked tokens stay listed for the audit trail."""
    row = (
        session.get(ApiToken, token_id)
        or session.scalars(
            select(ApiToken).where(ApiToken.name == token_id, ApiToken.revoked_at.is_(None))
        ).first()
    )
    if row is None:
        raise NotFound(f"no token {token_id!r}", "list tokens with `tunelab tokens list`")
    row.revoked_at = row.revoked_at or utcnow()
    session.commit()
    return row
