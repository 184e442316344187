"""API keys and the tenants they belong to, kept in one JSON file the gateway reads.

A key is shown once, when created; the file keeps only its SHA-256. Each tenant has a policy:
the models it may call (none listed: all), a request rate with a burst, requests in flight at
once, and a daily quota (0: unlimited). `maas serve` watches the file and hands every change to
the running gateway through HAProxy's runtime API (maps replaced atomically), so creating,
rotating and revoking keys take effect within a second, with no restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from maas.base.errors import ServerError

KEYS_ENV = "MAAS_KEYS"
KEY_PREFIX = "maas_"
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def default_key_file() -> Path:
    """$MAAS_KEYS, else ~/.config/maas/keys.json."""
    chosen = os.environ.get(KEYS_ENV)
    return Path(chosen) if chosen else Path.home() / ".config" / "maas" / "keys.json"


def key_digest(key: str) -> str:
    """The SHA-256 (hex) the file and the gateway know a key by."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class TenantPolicy:
    """What a tenant may do; 0 means unlimited."""

    models: tuple[str, ...] = ()  # empty: every model
    rate_per_s: int = 0
    burst: int = 0  # requests above the rate allowed within one second
    concurrency: int = 0  # requests in flight at once (waiting in the gateway included)
    quota_per_day: int = 0  # admitted requests in any 24 hours

    def __post_init__(self) -> None:
        for name in ("rate_per_s", "burst", "concurrency", "quota_per_day"):
            value = getattr(self, name)
            if value < 0:
                raise ServerError(f"{name} must be 0 (unlimited) or more, got {value}")
        if self.burst and not self.rate_per_s:
            raise ServerError("a burst needs a rate (--rate)")

    def describe(self) -> str:
        """The policy in one line."""
        parts = [f"models {','.join(self.models) if self.models else 'all'}"]
        for label, value in (
            ("rate/s", self.rate_per_s),
            ("burst", self.burst),
            ("in flight", self.concurrency),
            ("per day", self.quota_per_day),
        ):
            parts.append(f"{label} {value or 'unlimited'}")
        return ", ".join(parts)


@dataclass(frozen=True)
class ApiKey:
    """One key as the file keeps it: never the key itself."""

    key_id: str  # the public part, shown by `maas keys list` and written in the audit log
    tenant: str
    sha256: str
    created: float
    revoked: float = 0.0  # when; 0: active

    @property
    def active(self) -> bool:
        """Whether the gateway accepts it."""
        return not self.revoked


@dataclass(frozen=True)
class KeyFile:
    """Tenants, their policies and their keys."""

    tenants: dict[str, TenantPolicy] = field(default_factory=dict)
    keys: tuple[ApiKey, ...] = ()

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        """The file's content; an absent file is an empty one."""
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            tenants = {
                name: TenantPolicy(**{**policy, "models": tuple(policy.get("models", ()))})
                for name, policy in data.get("tenants", {}).items()
            }
            keys = tuple(ApiKey(**key) for key in data.get("keys", ()))
        except (OSError, ValueError, TypeError) as failure:
            raise ServerError(f"cannot read the key file {path}: {failure}") from failure
        return cls(tenants, keys)

    def save(self, path: Path) -> None:
        """Write atomically, readable by the owner only (it names every tenant's limits)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {
            "tenants": {name: asdict(policy) for name, policy in sorted(self.tenants.items())},
            "keys": [asdict(key) for key in self.keys],
        }
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)

    def active_keys(self) -> list[ApiKey]:
        """Keys the gateway accepts, of tenants that exist."""
        return [key for key in self.keys if key.active and key.tenant in self.tenants]

    def create(self, tenant: str, policy: TenantPolicy | None = None) -> tuple[KeyFile, str]:
        """A new key for tenant (created with policy, or its policy updated); the key, once."""
        if not TENANT_NAME.match(tenant):
            raise ServerError(
                f"a tenant name is 1-63 letters, digits, '.', '_' or '-', got {tenant!r}"
            )
        key_id = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        entry = ApiKey(key_id, tenant, key_digest(secret), time.time())
        tenants = dict(self.tenants)
        if policy is not None or tenant not in tenants:
            tenants[tenant] = policy or TenantPolicy()
        return KeyFile(tenants, (*self.keys, entry)), secret

    def revoke(self, key_id: str = "", tenant: str = "") -> tuple[KeyFile, list[ApiKey]]:
        """Revoke one key, or every key of a tenant; the keys revoked."""
        if bool(key_id) == bool(tenant):
            raise ServerError("revoke one key (--key-id) or every key of a tenant (--tenant)")
        chosen = [
            key
            for key in self.keys
            if key.active and (key.key_id == key_id if key_id else key.tenant == tenant)
        ]
        if not chosen:
            what = f"key {key_id}" if key_id else f"tenant {tenant}"
            raise ServerError(f"no active key of {what} in the key file")
        now = time.time()
        ids = {key.key_id for key in chosen}
        keys = tuple(replace(k, revoked=now) if k.key_id in ids else k for k in self.keys)
        return KeyFile(self.tenants, keys), chosen

    def rotate(self, tenant: str) -> tuple[KeyFile, str, list[ApiKey]]:
        """A new key for tenant and its old keys revoked, in one write: the key, once."""
        if tenant not in self.tenants:
            raise ServerError(f"no tenant {tenant!r} in the key file")
        with_new, secret = self.create(tenant)
        old = [key for key in self.keys if key.active and key.tenant == tenant]
        ids = {key.key_id for key in old}
        now = time.time()
        keys = tuple(replace(k, revoked=now) if k.key_id in ids else k for k in with_new.keys)
        return KeyFile(self.tenants, keys), secret, old
