"""Pseudonymisation of people at ingest, with a keyed hash.

Usernames are replaced by ``a_`` + 16 hex digits of HMAC-SHA256(key, lower-cased name). The key comes
from an environment variable or a key file created on first use (mode 0600); it is never written to any
output. The same key gives the same pseudonym across runs and sources, so people can be counted and
followed without being named. ``u/name`` mentions in text are pseudonymised the same way, so a reply
network stays linkable while no raw username reaches the lake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

DELETED_AUTHORS = frozenset({"", "[deleted]", "[removed]", "deleted", "none", "null"})
# u/name or /u/name or /user/name, as Reddit links them; names are 3-20 of [A-Za-z0-9_-].
_MENTION = re.compile(r"(?<![\w/])(/?u(?:ser)?/)([A-Za-z0-9_-]{3,20})\b", re.IGNORECASE)
_REDDIT_USER_URL = re.compile(r"(reddit\.com/u(?:ser)?/)([A-Za-z0-9_-]{3,20})", re.IGNORECASE)
_JSON_AUTHOR = re.compile(r'("author(?:_fullname)?"\s*:\s*")([^"\\]*)("?)')
# A user's profile posts live in the pseudo-subreddit u_<name>: r/u_name in links, "subreddit": "u_name" in dumps.
_PROFILE_LINK = re.compile(r"(?<![\w])(/?r/u_)([A-Za-z0-9_-]{3,20})\b", re.IGNORECASE)
_JSON_PROFILE = re.compile(r'("subreddit"\s*:\s*"u_)([^"\\]*)(")', re.IGNORECASE)
# A bare field of a row whose columns cannot be aligned (a malformed CSV row) may be a username.
_NAME_LIKE = re.compile(r"(?=[^\s]*[A-Za-z])[A-Za-z0-9_-]{3,20}")


def load_key(key_env: str, key_file: Path) -> bytes:
    """The pseudonymisation key: ``$key_env`` if set, else ``key_file`` (created with a random key)."""
    value = os.environ.get(key_env, "").strip()
    if value:
        return value.encode()
    if key_file.exists():
        value = key_file.read_text(encoding="utf-8").strip()
        if not value:
            raise ValueError(f"pseudonym key file {key_file} is empty: delete it to create a new key")
        return value.encode()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    log.warning("created a new pseudonym key at %s; keep it (or set $%s) so pseudonyms stay stable "
                "across runs", key_file, key_env)
    return key_file.read_text(encoding="utf-8").strip().encode()


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key
        self._cache: dict[str, str] = {}

    @property
    def key_id(self) -> str:
        """A fingerprint that tells runs with the same key apart from others, revealing nothing."""
        return hmac.new(self._key, b"edumine-key-id", hashlib.sha256).hexdigest()[:8]

    def author(self, name: str | None) -> str | None:
        """Pseudonym of a username; None for deleted or missing authors (they are unknown people)."""
        if name is None:
            return None
        name = name.strip()
        if name.lower() in DELETED_AUTHORS:
            return None
        cached = self._cache.get(name)
        if cached is None:
            digest = hmac.digest(self._key, name.lower().encode("utf-8"), "sha256").hex()  # one C call
            cached = self._cache[name] = "a_" + digest[:16]
            if len(self._cache) > 500_000:
                self._cache.clear()
        return cached

    def authors(self, names: list[str | None]) -> list[str | None]:
        """``author`` of each name (one loop for a batch's distinct names: no call per name)."""
        cache, key, digest, deleted = self._cache, self._key, hmac.digest, DELETED_AUTHORS
        out: list[str | None] = []
        for name in names:
            if name is None:
                out.append(None)
                continue
            name = name.strip()
            cached = cache.get(name)
            if cached is None:
                lowered = name.lower()
                if lowered in deleted:
                    out.append(None)
                    continue
                cached = cache[name] = "a_" + digest(key, lowered.encode("utf-8"), "sha256").hex()[:16]
            out.append(cached)
        if len(cache) > 500_000:
            cache.clear()
        return out

    def profile(self, community: str) -> str:
        """The pseudo-community of a user's profile (``u_name``) with the name pseudonymised."""
        return "u_" + (self.author(community[2:]) or "unknown")

    def text(self, text: str | None) -> str | None:
        """Text with ``u/name`` mentions, reddit.com/user/name and r/u_name links pseudonymised."""
        if not text:
            return text
        lowered = text.lower()
        if "u/" not in lowered and "user/" not in lowered and "r/u_" not in lowered:
            return text
        text = _REDDIT_USER_URL.sub(lambda m: m.group(1) + (self.author(m.group(2)) or ""), text)
        text = _PROFILE_LINK.sub(lambda m: m.group(1) + (self.author(m.group(2)) or ""), text)
        return _MENTION.sub(lambda m: m.group(1) + (self.author(m.group(2)) or ""), text)

    def excerpt(self, raw: str | dict, limit: int = 300, *, personal: tuple[str, ...] = ()) -> str:
        """A raw input excerpt safe to keep in quarantine.

        ``raw`` is a line of text (JSON author and profile fields, mentions and user links are pseudonymised)
        or a row as a dict, whose ``personal`` fields hold usernames. ``personal=("*",)`` says the row's
        columns cannot be trusted to be aligned (a malformed CSV row): then every bare name-like field is
        treated as a possible username.
        """
        if isinstance(raw, dict):
            anywhere = "*" in personal
            safe = {}
            for key, value in raw.items():
                if value is None:
                    safe[key] = None
                elif key in personal or (anywhere and _NAME_LIKE.fullmatch(str(value).strip())):
                    safe[key] = self.author(str(value))
                else:
                    safe[key] = self.text(str(value))
            return json.dumps(safe, ensure_ascii=False, default=str)[:limit]
        raw = _JSON_AUTHOR.sub(lambda m: m.group(1) + (self.author(m.group(2)) or "") + m.group(3), raw)
        raw = _JSON_PROFILE.sub(lambda m: m.group(1) + (self.author(m.group(2)) or "") + m.group(3), raw)
        return (self.text(raw) or "")[:limit]
