"""Who asks: the client key that supersede, repository context and typed-ahead share.

"Same client" never spans two editors: an ``X-Client-Id`` header decides when sent; otherwise
the API key and peer address must match AND (for supersede) the documents must match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request

from cgstudio.server.service import GenSpec


@dataclass(frozen=True)
class ClientKey:
    key: str
    explicit: bool  # from X-Client-Id


def client_key(request: Request, api_key: str | None) -> ClientKey:
    cid = request.headers.get("x-client-id", "").strip()
    if cid:
        return ClientKey("id:" + cid[:256], True)
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    host = request.client.host if request.client else "-"
    return ClientKey(f"key:{digest}@{host}", False)


def same_document(old: GenSpec, new: GenSpec) -> bool:
    if old.path != new.path:
        return False
    a, b = old.document_head, new.document_head
    if a == b:
        return False
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    # They differ only within the last line of one of them (typing, backspace, Enter),
    # or one extends the other.
    return "\n" not in a[common:] or "\n" not in b[common:]
