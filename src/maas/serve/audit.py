"""The audit log and usage metering: one JSON line per request, counted per tenant and model.

The gateway puts one log line per request (no payload, no key: `gateway_config.audit_format`)
in a ring buffer that it streams to a Unix socket of `maas serve` (owner only); a thread there
receives the lines, writes it to the audit file
(rotated by size) and adds it to the per-tenant usage counters that the stack's metrics export.
`maas usage` sums the files for billing.

Fields of a line: time (ISO 8601, UTC, ms), tenant ("" with keys off), model, version,
protocol (http|grpc), call (infer, or other: metadata, readiness, …; only inference
is metered), status (HTTP status; gRPC calls refused by the gateway carry their gRPC
status in grpc_status; a gRPC error from Triton travels in trailers, which the gateway cannot
read: such a call is logged with grpc_status "" and counted as answered), latency_ms (at the
gateway, first byte in to last byte out), server_ms (time to Triton's answer headers, -1 if it
never reached Triton), bytes_in, bytes_out, items (the request's batch size: images or texts;
1 for a model that does not batch; 0 when not read: other calls, refused before the check).

Tokens are counted by the tokenizer inside Triton (on its metrics page, per tenant, model
called and protocol); every TOKENS_POLL_S, and at stop, the new ones are written as lines of
their own: time, tenant, model, protocol, call ("tokens"), tokens.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("maas.serve")

AUDIT_SOCKET = "audit.sock"
BATCH_S = 0.1  # how often the audit socket is drained
TOKENS_POLL_S = 5.0  # how often the tokenizer's counters are read from Triton's metrics
TOKENS_METRIC = "maas_tokenizer_tokens_total"  # triton_models/tokenizer.py


def default_audit_log() -> Path:
    """$XDG_STATE_HOME/maas/audit.jsonl (~/.local/state/maas/audit.jsonl)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "maas" / "audit.jsonl"


MiB = 1024 * 1024
FIELDS = (
    "time", "tenant", "model", "version", "protocol", "call", "status", "grpc_status",
    "latency_ms", "server_ms", "bytes_in", "bytes_out", "items",
)  # fmt: skip
TOKEN_FIELDS = ("time", "tenant", "model", "protocol", "call", "tokens")


@dataclass
class Usage:
    """What one tenant did with one model over one protocol."""

    requests: int = 0
    failures: int = 0
    items: int = 0  # images or texts
    tokens: int = 0  # of texts, from the tokenizer
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0  # at the gateway, summed
    triton_seconds: float = 0.0  # until Triton's answer (queue and compute), summed

    def add(self, entry: dict[str, Any]) -> None:
        """Count one audit entry: a request, or tokens counted since the last such line."""
        if entry.get("call") == "tokens":
            self.tokens += int(entry.get("tokens", 0))
            return
        self.requests += 1
        self.failures += int(failed(entry))
        self.items += int(entry.get("items") or 0)
        self.bytes_in += int(entry.get("bytes_in", 0))
        self.bytes_out += int(entry.get("bytes_out", 0))
        self.seconds += max(float(entry.get("latency_ms", 0)), 0.0) / 1000
        self.triton_seconds += max(float(entry.get("server_ms", 0)), 0.0) / 1000


METERED = ("infer", "tokens")  # calls that count as usage


UsageKey = tuple[str, str, str]  # tenant, model, protocol


def failed(entry: dict[str, Any]) -> bool:
    """Whether a request failed: an HTTP error status, or a gRPC status other than OK."""
    grpc_status = str(entry.get("grpc_status", ""))
    return int(entry.get("status", 0)) >= 400 or grpc_status not in ("", "0")


def entry_of(message: bytes) -> dict[str, Any] | None:
    """The audit entry of one log datagram, its time made ISO 8601; None if unreadable."""
    try:
        entry = json.loads(message.decode("utf-8", errors="replace").strip())
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    for name in ("tenant", "model", "version", "grpc_status", "items"):
        if entry.get(name) == "-":  # HAProxy's word for a variable that was never set
            entry[name] = ""
    entry["items"] = int(entry["items"]) if str(entry.get("items", "")).isdigit() else 0
    stamp = datetime.datetime.fromtimestamp(int(entry.get("time", 0)) / 1000, datetime.UTC)
    entry["time"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry["call"] = "infer" if entry.pop("infer", "") == "1" else "other"
    return {name: entry.get(name, "") for name in FIELDS}


def accept_all(listener: socket.socket, streams: dict[socket.socket, bytes]) -> None:
    """Take every pending connection (the gateway reconnects after a restart)."""
    while True:
        try:
            connection, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.setblocking(False)
        streams[connection] = b""


def read_lines(streams: dict[socket.socket, bytes]) -> Iterator[dict[str, Any] | None]:
    """The entries of every whole line waiting on the connections; closed ones are dropped."""
    for connection in list(streams):
        data, closed = receive_available(connection)
        *whole, rest = (streams[connection] + data).split(b"\n")
        streams[connection] = rest
        yield from map(entry_of, whole)
        if closed:
            connection.close()
            del streams[connection]


def receive_available(connection: socket.socket) -> tuple[bytes, bool]:
    """What a non-blocking connection has now, and whether its peer has closed it."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = connection.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return b"".join(chunks), False
        except OSError:
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


class RotatingFile:
    """A file of lines, renamed to .1 (.2, …) when it passes max_bytes; readable by us only."""

    def __init__(self, path: Path, max_bytes: int = 64 * MiB, backups: int = 10) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out = self._open()

    def _open(self) -> Any:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(descriptor, "a")

    def write(self, text: str) -> None:
        """Append lines (written through at once); rotate first if they would pass the size."""
        if self._out.tell() + len(text) > self.max_bytes and self._out.tell() > 0:
            self._rotate()
        self._out.write(text)
        self._out.flush()

    def _rotate(self) -> None:
        self._out.close()
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._out = self._open()

    def close(self) -> None:
        """Flush and close."""
        self._out.close()


class AuditLog:
    """Receives the gateway's log datagrams, writes the audit file and counts usage."""

    def __init__(
        self,
        path: Path,
        socket_path: Path,
        tokens_urls: tuple[str, ...] = (),  # every replica's metrics page
        max_bytes: int = 64 * MiB,
    ) -> None:
        self.path, self.socket_path = path, socket_path
        self.max_bytes = max_bytes
        self.tokens = [TokenCounters(url) for url in tokens_urls]
        self.usage: dict[UsageKey, Usage] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen (before the gateway starts sending) and start receiving."""
        self.socket_path.unlink(missing_ok=True)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)  # only this user's gateway may write the audit
        self._socket.listen(4)
        self._socket.setblocking(False)
        out = RotatingFile(self.path, self.max_bytes)
        self._thread = threading.Thread(
            target=self._receive, args=(self._socket, out), name="maas-audit", daemon=True
        )
        self._thread.start()

    def _receive(self, listener: socket.socket, out: RotatingFile) -> None:
        """Read the gateway's stream every BATCH_S: one wake-up per batch, not per request.

        A wake-up per request put a third process on two busy cores for each call (seen: 0.1-0.2
        ms added to the median at one user). Meanwhile the lines wait in the socket and, past
        its buffer, in the gateway's ring (32 MiB): none is dropped, unlike datagrams, which
        the kernel drops past ten queued (net.unix.max_dgram_qlen).
        """
        streams: dict[socket.socket, bytes] = {}  # connection → an unfinished line
        poll_at = time.monotonic() + TOKENS_POLL_S
        try:
            while True:
                stopping = self._stopping.wait(BATCH_S)
                accept_all(listener, streams)
                lines = [line for line in read_lines(streams) if line is not None]
                if stopping or time.monotonic() >= poll_at:
                    lines += [line for counters in self.tokens for line in counters.new_lines()]
                    poll_at = time.monotonic() + TOKENS_POLL_S
                if lines:
                    out.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines))
                    self._count(lines)
                if stopping:
                    return  # what arrived before the stop is written
        finally:
            for connection in streams:
                connection.close()
            out.close()

    def _count(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            for entry in entries:
                if entry["call"] not in METERED:
                    continue  # metadata, readiness and the like: audited, not metered
                key = (str(entry["tenant"]), str(entry["model"]), str(entry["protocol"]))
                self.usage.setdefault(key, Usage()).add(entry)

    def usage_now(self) -> dict[UsageKey, Usage]:
        """A copy of the counters."""
        with self._lock:
            return {key: Usage(**vars(value)) for key, value in self.usage.items()}

    def stop(self) -> None:
        """Stop receiving once what has arrived is written."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        self.socket_path.unlink(missing_ok=True)


class TokenCounters:
    """The tokenizer's counters on Triton's metrics page, turned into lines of new tokens."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last: dict[UsageKey, int] = {}

    def read(self) -> dict[UsageKey, int] | None:
        """Tokens so far per tenant, model and protocol; None if Triton did not answer."""
        if not self.url:
            return {}
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                page = response.read().decode()
        except OSError:
            return None  # restarting: the next poll reads what this one missed
        return token_counts(page)

    def new_lines(self) -> list[dict[str, Any]]:
        """A line per tenant, model and protocol with tokens since the last read."""
        counts = self.read()
        if counts is None:
            return []
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        lines = []
        for key, total in sorted(counts.items()):
            before = self.last.get(key, 0)
            new = total - before if total >= before else total  # Triton restarted: from 0
            if new > 0:
                values = (stamp.replace("+00:00", "Z"), *key, "tokens", new)
                lines.append(dict(zip(TOKEN_FIELDS, values, strict=True)))
        self.last = counts
        return lines


def token_counts(page: str) -> dict[UsageKey, int]:
    """The tokenizer's counters of a metrics page, by tenant, model and protocol."""
    wanted = [line for line in page.splitlines() if line.startswith(TOKENS_METRIC + "{")]
    counts: dict[UsageKey, int] = {}
    for family in text_string_to_metric_families("".join(line + "\n" for line in wanted)):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("tenant", ""), labels.get("model", ""), labels.get("protocol", ""))
            counts[key] = counts.get(key, 0) + int(sample.value)
    return counts


# --- reading the files back, for `maas usage` -----------------------------------------------


def audit_files(path: Path) -> list[Path]:
    """The audit file and its rotated copies, oldest first."""
    rotated = sorted(
        path.parent.glob(f"{path.name}.*"),
        key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
        reverse=True,
    )
    return [p for p in rotated if p.suffix[1:].isdigit()] + ([path] if path.exists() else [])


def read_entries(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every audit entry of the files, in order."""
    for path in paths:
        with path.open() as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash


@dataclass
class UsageReport:
    """Usage per tenant, model and protocol within a time window."""

    since: str
    until: str
    rows: dict[UsageKey, Usage] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[dict[str, Any]], since: str, until: str) -> UsageReport:
        """Sum the entries whose time is in [since, until) (ISO 8601 strings compare as times)."""
        report = cls(since, until)
        for entry in entries:
            stamp = str(entry.get("time", ""))
            if (
                entry.get("call") not in METERED
                or (since and stamp < since)
                or (until and stamp >= until)
            ):
                continue
            key = (str(entry["tenant"]), str(entry["model"]), str(entry["protocol"]))
            report.rows.setdefault(key, Usage()).add(entry)
        return report

    def table(self) -> list[list[str]]:
        """Header and one row per tenant, model and protocol."""
        header = ["tenant", "model", "protocol", "requests", "failures", "items", "tokens",
                  "bytes_in", "bytes_out", "seconds", "triton_seconds"]  # fmt: skip
        rows = [
            [*key, str(u.requests), str(u.failures), str(u.items), str(u.tokens),
             str(u.bytes_in), str(u.bytes_out), f"{u.seconds:.3f}", f"{u.triton_seconds:.3f}"]
            for key, u in sorted(self.rows.items())
        ]  # fmt: skip
        return [header, *rows]

    def csv(self) -> str:
        """As CSV."""
        return "".join(",".join(row) + "\n" for row in self.table())

    def markdown(self) -> str:
        """As a Markdown table."""
        header, *rows = self.table()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
