"""Who owns a run, without trusting the browser: owner ids come from secrets the server issued.

A browser keeps one token in its localStorage, so a reload finds its runs again. The server issues it as
`<nonce>.<HMAC(key, nonce)>`, with a key kept in the runs folder (`.owner-key`, so tokens survive a restart),
and accepts only tokens it signed. The owner id written to a run's meta.json is derived from the nonce; the
token never is, and no API returns either. A session's owner id lives in its server-side state (`gr.State`),
so no endpoint takes it from the client. A client without a token (an API client that never loaded the page)
owns what its Gradio session starts: the id comes from its session hash.
Left out: accounts and logins (a token is a bearer secret: whoever copies a browser's localStorage owns its runs).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


class Owners:
    def __init__(self, root: str | os.PathLike):
        path = Path(root) / ".owner-key"
        try:
            self._key = path.read_bytes()
        except OSError:
            self._key = b""
        if len(self._key) < 32:
            self._key = secrets.token_bytes(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._key)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        """A new browser's token."""
        nonce = secrets.token_hex(16)
        return f"{nonce}.{self._sign(nonce)}"

    def owner(self, token: str | None) -> str | None:
        """The owner id of a token this server issued; None for anything else (forged, empty, garbled)."""
        nonce, _, sig = (token or "").partition(".")
        if len(nonce) != 32 or not hmac.compare_digest(sig, self._sign(nonce)):
            return None
        return "u-" + hashlib.sha256(nonce.encode()).hexdigest()[:20]

    @staticmethod
    def of_session(session_hash: str | None) -> str:
        """The owner id of a session that holds no token (an API client)."""
        return "s-" + hashlib.sha256((session_hash or "anonymous").encode()).hexdigest()[:20]
