"""Tenants at the gateway: API keys, model access, rate, in-flight and daily limits.

Written as HAProxy rules over maps, so a request costs a few map lookups and no Lua:
- `keys.map`: SHA-256 of a key → tenant. No or unknown key: HTTP 401 / gRPC UNAUTHENTICATED.
- `access.map`: `tenant/model` → 1, `open.map`: tenant → 1 when it may call every model.
  A model outside the list: HTTP 403 / gRPC PERMISSION_DENIED.
- `rate.map`, `concurrency.map`, `quota.map`: tenant → limit. Over one: HTTP 429 with
  `Retry-After` / gRPC RESOURCE_EXHAUSTED ("retry after N s" in the message).
The rate counts admitted inference requests per second (gpc0 over 1 s; rate + burst allowed in
any one second), the quota admitted ones in any 24 hours (gpc1), and requests in flight are the
streams tracking the tenant's entry (`sc_trackers`), waiting in the gateway included. Health
endpoints stay open for probes. The maps are replaced atomically through the runtime API
(`prepare map` / `commit map`) when the key file changes.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from maas.base.errors import ServerError

from .keys import KeyFile

UNLIMITED = 1_000_000_000
MAPS = ("keys", "access", "open", "rate", "concurrency", "quota")
TENANTS_TABLE = "maas_tenants"
RUNTIME_SOCKET = "runtime.sock"
GRPC_STATUS = {401: 16, 403: 7, 429: 8}  # UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED
RETRY_RATE_S, RETRY_QUOTA_S = 1, 60


def map_path(prefix: Path, name: str) -> Path:
    """Where one of the tenant maps lives."""
    return prefix / f"{name}.map"


def map_entries(keys: KeyFile) -> dict[str, list[tuple[str, str]]]:
    """Every map's entries for a key file."""
    entries: dict[str, list[tuple[str, str]]] = {name: [] for name in MAPS}
    entries["keys"] = [(key.sha256, key.tenant) for key in keys.active_keys()]
    for tenant, policy in sorted(keys.tenants.items()):
        if policy.models:
            entries["access"] += [(f"{tenant}/{model}", "1") for model in policy.models]
        else:
            entries["open"].append((tenant, "1"))
        per_second = policy.rate_per_s + policy.burst if policy.rate_per_s else UNLIMITED
        entries["rate"].append((tenant, str(per_second)))
        entries["concurrency"].append((tenant, str(policy.concurrency or UNLIMITED)))
        entries["quota"].append((tenant, str(policy.quota_per_day or UNLIMITED)))
    return entries


def write_maps(prefix: Path, keys: KeyFile) -> None:
    """The map files HAProxy loads at start."""
    for name, entries in map_entries(keys).items():
        map_path(prefix, name).write_text("".join(f"{key} {value}\n" for key, value in entries))


def tenants_table() -> str:
    """The stick table of tenants: admitted per second, admitted per day, trackers."""
    return (
        f"backend {TENANTS_TABLE}\n"
        "    stick-table type string len 64 size 100k expire 25h "
        "store gpc0_rate(1s),gpc1_rate(86400s)\n"
    )


def lookup(prefix: Path, name: str, key: str, default: int | None = None) -> str:
    """A map lookup converter chain on a variable."""
    fallback = f",{default}" if default is not None else ""
    converter = "map_str_int" if default is not None else "map"
    return f"var({key}),{converter}({map_path(prefix, name)}{fallback})"


@dataclass(frozen=True)
class Refusal:
    """One refusal: its status, the message, and when it applies.

    The message's parts are text and, between braces, the variables filled in per request
    ("tenant {txn.maas_tenant} may not …"), escaped for JSON (HTTP) or percent-encoded (gRPC).
    """

    status: int
    message: str
    condition: str
    retry_after_s: int = 0

    @property
    def parts(self) -> list[tuple[str, bool]]:
        """(text, is a variable) pieces of the message with its retry hint."""
        hint = f"; retry after {self.retry_after_s} s" if self.retry_after_s else ""
        pieces = re.split(r"\{([a-z_.]+)\}", self.message + hint)
        return [(piece, index % 2 == 1) for index, piece in enumerate(pieces) if piece]

    def http(self) -> str:
        """The HTTP rule: Triton's JSON error form, Retry-After and WWW-Authenticate as due."""
        headers = f" hdr retry-after {self.retry_after_s}" if self.retry_after_s else ""
        if self.status == 401:
            headers += ' hdr www-authenticate "Bearer"'
        text = "".join(
            f"%[var({piece}),json(utf8s)]" if variable else piece.replace("%", "%%")
            for piece, variable in self.parts
        )
        return (
            f"    http-request return status {self.status} content-type application/json "
            f'lf-string \'{{"error":"{text}"}}\'{headers} if {self.condition}\n'
        )

    def grpc(self) -> str:
        """The gRPC rule: a trailers-only answer with the status and the message."""
        text = "".join(
            f"%[var({piece}),url_enc]" if variable else quote(piece).replace("%", "%%")
            for piece, variable in self.parts
        )
        return (
            "    http-request return status 200 content-type application/grpc "
            f"hdr grpc-status {GRPC_STATUS[self.status]} hdr grpc-message '{text}' "
            f"if {self.condition}\n"
        )


TENANT = "txn.maas_tenant"
MODEL = "txn.maas_model"
KNOWN = f"{{ var({TENANT}) -m found }}"


def identify(prefix: Path, exempt: str, header: str = "authorization") -> str:
    """Rules that set the tenant from the bearer key (as its SHA-256) and track it."""
    digest = f'req.hdr({header}),regsub("^[Bb]earer +",""),sha2(256),hex,lower'
    return (
        f"    http-request set-var({TENANT}) {digest},map({map_path(prefix, 'keys')}) "
        f"if !{exempt} {{ req.hdr({header}) -m found }}\n"
    )


def unauthenticated(exempt: str) -> Refusal:
    """No key, or one the key file does not hold (or has revoked)."""
    return Refusal(
        401,
        "a valid API key is needed (HTTP: Authorization: Bearer KEY; gRPC: authorization metadata)",
        f"!{exempt} !{KNOWN}",
    )


def forbidden(prefix: Path) -> Refusal:
    """A model outside the tenant's list."""
    access = f"var({TENANT}),concat(/,{MODEL}),map({map_path(prefix, 'access')})"
    opened = f"var({TENANT}),map({map_path(prefix, 'open')})"
    return Refusal(
        403,
        f"tenant {{{TENANT}}} may not call model {{{MODEL}}}",
        f"{KNOWN} {{ var({MODEL}) -m found }} !{{ {access} -m found }} !{{ {opened} -m found }}",
    )


def over_limits(prefix: Path, infer: str) -> list[Refusal]:
    """In flight, rate and daily quota, checked on inference requests of a known tenant."""
    tracked = f"{KNOWN} {infer}"
    return [
        Refusal(
            429,
            f"tenant {{{TENANT}}} has its limit of requests in flight",
            f"{tracked} {{ sc_trackers(1),sub(txn.maas_concurrency) gt 0 }}",
            RETRY_RATE_S,
        ),
        Refusal(
            429,
            f"tenant {{{TENANT}}} is over its request rate",
            f"{tracked} {{ sc_gpc0_rate(1),sub(txn.maas_rate) ge 0 }}",
            RETRY_RATE_S,
        ),
        Refusal(
            429,
            f"tenant {{{TENANT}}} has used its daily quota",
            f"{tracked} {{ sc_gpc1_rate(1),sub(txn.maas_quota) ge 0 }}",
            RETRY_QUOTA_S,
        ),
    ]


def limit_variables(prefix: Path, infer: str) -> str:
    """Track the tenant and read its limits into variables the refusals compare against."""
    tracked = f"{KNOWN} {infer}"
    return (
        f"    http-request track-sc1 var({TENANT}) table {TENANTS_TABLE} if {tracked}\n"
        + "".join(
            f"    http-request set-var(txn.maas_{name}) "
            f"{lookup(prefix, name, TENANT, UNLIMITED)} if {tracked}\n"
            for name in ("rate", "concurrency", "quota")
        )
    )


def tenant_rules(prefix: Path, exempt: str, infer: str, protocol: str, check_model: bool) -> str:
    """A frontend's rules: identify, refuse the unknown (and the forbidden), then the limits."""

    def render(refusal: Refusal) -> str:
        return refusal.http() if protocol == "http" else refusal.grpc()

    return (
        identify(prefix, exempt)
        + render(unauthenticated(exempt))
        + (render(forbidden(prefix)) if check_model else "")
        + limit_variables(prefix, infer)
        + "".join(render(refusal) for refusal in over_limits(prefix, infer))
        + count_admitted(infer)
    )


def count_admitted(infer: str) -> str:
    """Count a request against the rate and the quota once it passed every check."""
    tracked = f"{KNOWN} {infer}"
    return "".join(f"    http-request sc-inc-gpc{n}(1) if {tracked}\n" for n in (0, 1))


# --- the runtime API ------------------------------------------------------------------------


def runtime_command(sock: Path, command: str, timeout_s: float = 5.0) -> str:
    """One command on HAProxy's runtime API; its answer."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(timeout_s)
            conn.connect(str(sock))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError as failure:
        message = f"the gateway's runtime API at {sock} did not answer: {failure}"
        raise ServerError(message) from failure
    return b"".join(chunks).decode(errors="replace")


def replace_map(sock: Path, path: Path, entries: list[tuple[str, str]]) -> None:
    """Swap a map's whole content atomically: requests see the old map or the new one."""
    answer = runtime_command(sock, f"prepare map {path}")
    if "New version created:" not in answer:
        raise ServerError(f"the gateway refused to prepare {path.name}: {answer.strip()}")
    version = answer.split(":", 1)[1].strip()
    if entries:
        payload = "".join(f"{key} {value}\n" for key, value in entries)
        answer = runtime_command(sock, f"add map @{version} {path} <<\n{payload}")
        if answer.strip():
            raise ServerError(f"the gateway refused entries of {path.name}: {answer.strip()}")
    answer = runtime_command(sock, f"commit map @{version} {path}")
    if answer.strip():
        raise ServerError(f"the gateway refused to commit {path.name}: {answer.strip()}")


def push_keys(sock: Path, prefix: Path, keys: KeyFile) -> None:
    """Hand a changed key file to a running gateway, and keep its map files current."""
    write_maps(prefix, keys)
    for name, entries in map_entries(keys).items():
        replace_map(sock, map_path(prefix, name), entries)
