"""`maas keys` (tenants and their API keys, in the file the gateway follows) and `maas usage`."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer

from maas.base.errors import ServerError
from maas.serve.audit import UsageReport, audit_files, default_audit_log, read_entries
from maas.serve.keys import KeyFile, TenantPolicy, default_key_file

from .common import user_errors

keys_app = typer.Typer(
    help="API keys and tenants: create, list, revoke, rotate (maas serve applies changes "
    "within a second).",
    no_args_is_help=True,
)

KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--file", help="The key file [default: $MAAS_KEYS, else ~/.config/maas/keys.json]."
    ),
]
TenantOption = Annotated[str, typer.Option(help="The tenant (a team, a service).")]


def key_file(chosen: Path | None) -> Path:
    """The key file asked for, else the default one."""
    return chosen or default_key_file()


def rate_of(text: str) -> int:
    """'20/s' or '20' → 20 requests per second."""
    number = text.removesuffix("/s")
    if not number.isdigit():
        raise typer.BadParameter(f"--rate is requests per second, e.g. 20/s; got {text!r}")
    return int(number)


def quota_of(text: str) -> int:
    """'10000/day' or '10000' → 10000 requests a day."""
    number = text.removesuffix("/day")
    if not number.isdigit():
        raise typer.BadParameter(f"--quota is requests per day, e.g. 10000/day; got {text!r}")
    return int(number)


@keys_app.command("create")
def create_command(
    tenant: TenantOption,
    models: Annotated[
        str, typer.Option(help="Models the tenant may call, comma-separated [default: all].")
    ] = "",
    rate: Annotated[str, typer.Option(help="Requests per second, e.g. 20/s [0: unlimited].")] = "0",
    burst: Annotated[int, typer.Option(min=0, help="Requests above the rate in a second.")] = 0,
    concurrency: Annotated[
        int, typer.Option(min=0, help="Requests in flight at once [0: unlimited].")
    ] = 0,
    quota: Annotated[str, typer.Option(help="Requests per day, e.g. 10000/day [0: none].")] = "0",
    file: KeyFileOption = None,
) -> None:
    """Create a key for a tenant (and set its policy); the key is shown this once."""
    with user_errors():
        path = key_file(file)
        policy = TenantPolicy(
            models=tuple(m for m in models.split(",") if m),
            rate_per_s=rate_of(rate),
            burst=burst,
            concurrency=concurrency,
            quota_per_day=quota_of(quota),
        )
        keys, secret = KeyFile.load(path).create(tenant, policy)
        keys.save(path)
        typer.echo(f"tenant {tenant}: {policy.describe()}")
        typer.echo(f"key (shown once; only its SHA-256 is kept in {path}):\n{secret}")


@keys_app.command("list")
def list_command(file: KeyFileOption = None) -> None:
    """Tenants, their policies and their keys (ids only)."""
    with user_errors():
        keys = KeyFile.load(key_file(file))
        for tenant, policy in sorted(keys.tenants.items()):
            typer.echo(f"{tenant}: {policy.describe()}")
            for key in (k for k in keys.keys if k.tenant == tenant):
                state = f"revoked {stamp(key.revoked)}" if key.revoked else "active"
                typer.echo(f"  {key.key_id}  created {stamp(key.created)}  {state}")


def stamp(seconds: float) -> str:
    """A time as the list shows it."""
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


@keys_app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Option(help="The id of one key (maas keys list).")] = "",
    tenant: Annotated[str, typer.Option(help="Revoke every key of this tenant.")] = "",
    file: KeyFileOption = None,
) -> None:
    """Revoke one key, or all of a tenant's."""
    with user_errors():
        path = key_file(file)
        keys, revoked = KeyFile.load(path).revoke(key_id, tenant)
        keys.save(path)
        typer.echo(f"revoked {', '.join(key.key_id for key in revoked)}")


@keys_app.command("rotate")
def rotate_command(
    tenant: TenantOption,
    keep_old: Annotated[
        bool, typer.Option(help="Keep the old keys active (revoke them later yourself).")
    ] = False,
    file: KeyFileOption = None,
) -> None:
    """A new key for the tenant; its old keys are revoked in the same write."""
    with user_errors():
        path = key_file(file)
        if keep_old:
            keys, secret = KeyFile.load(path).create(tenant)
            old: list[str] = []
        else:
            keys, secret, revoked = KeyFile.load(path).rotate(tenant)
            old = [key.key_id for key in revoked]
        keys.save(path)
        if old:
            typer.echo(f"revoked {', '.join(old)}")
        typer.echo(f"new key for {tenant} (shown once):\n{secret}")


def usage_command(
    audit_log: Annotated[
        Path | None,
        typer.Option(help="The audit log [default: ~/.local/state/maas/audit.jsonl]."),
    ] = None,
    since: Annotated[str, typer.Option(help="From this time on (ISO 8601, UTC).")] = "",
    until: Annotated[str, typer.Option(help="Before this time (ISO 8601, UTC).")] = "",
    output_format: Annotated[str, typer.Option("--format", help="csv or md.")] = "md",
) -> None:
    """Requests, failures, bytes and seconds per tenant and model, from the audit log."""
    with user_errors():
        if output_format not in ("csv", "md"):
            raise typer.BadParameter(f"--format must be csv or md, got {output_format!r}")
        path = audit_log or default_audit_log()
        files = audit_files(path)
        if not files:
            raise ServerError(f"no audit log at {path} (maas serve --audit-log)")
        report = UsageReport.of(read_entries(files), since, until)
        typer.echo(report.csv() if output_format == "csv" else report.markdown(), nl=False)
