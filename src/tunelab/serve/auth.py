"""Bearer-token check: `Authorization: Bearer $API_KEY`, compared in constant time.

`hmac.compare_digest` on bytes keeps the comparison time independent of how many leading
characters match, so the key cannot be guessed one character at a time from response timings.
"""

from __future__ import annotations

import hmac

from tunelab.serve.errors import ApiError


def check_api_key(authorization: str | None, api_key: str | None) -> None:
    """Raise a 401 ApiError unless no key is configured or the header carries the right one."""
    if not api_key:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise ApiError(401, "invalid or missing API key: send `Authorization: Bearer <API_KEY>`.", code="invalid_api_key")
