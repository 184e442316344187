"""Keys and tenants without a server: the key file, the gateway's maps and refusals, clients."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tritonclient.utils import InferenceServerException

from maas.base.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from maas.cli.serve_cmd import chosen_key_file, is_loopback
from maas.clients.errors import map_error
from maas.clients.transport import ClientOptions, call_kwargs
from maas.serve.audit import (
    FIELDS,
    TOKEN_FIELDS,
    RotatingFile,
    TokenCounters,
    Usage,
    UsageReport,
    audit_files,
    entry_of,
    failed,
    read_entries,
    token_counts,
)
from maas.serve.gateway_auth import UNLIMITED, Refusal, map_entries
from maas.serve.keys import KeyFile, TenantPolicy, key_digest
from maas.serve.tls import self_signed_certificate


def test_a_created_key_is_kept_only_as_its_digest_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys, secret = KeyFile().create("team-a", TenantPolicy(("m",), rate_per_s=5))
    keys.save(path)
    assert secret.startswith("maas_") and secret not in path.read_text()
    assert key_digest(secret) in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyFile.load(path)
    assert loaded == keys and loaded.tenants["team-a"].models == ("m",)


def test_rotation_revokes_the_old_keys_and_revocation_names_what_it_revoked() -> None:
    keys, first = KeyFile().create("team-a")
    keys, second, old = keys.rotate("team-a")
    assert [k.sha256 for k in keys.active_keys()] == [key_digest(second)]
    assert [k.sha256 for k in old] == [key_digest(first)]
    keys, revoked = keys.revoke(tenant="team-a")
    assert not keys.active_keys() and len(revoked) == 1
    with pytest.raises(ServerError, match="no active key of tenant team-a"):
        keys.revoke(tenant="team-a")
    with pytest.raises(ServerError, match="no tenant 'nobody'"):
        keys.rotate("nobody")


def test_policies_and_names_that_make_no_sense_are_refused() -> None:
    with pytest.raises(ServerError, match="a burst needs a rate"):
        TenantPolicy(burst=3)
    with pytest.raises(ServerError, match="concurrency must be 0"):
        TenantPolicy(concurrency=-1)
    with pytest.raises(ServerError, match="a tenant name is"):
        KeyFile().create("team a")


def test_maps_give_each_tenant_its_models_and_limits() -> None:
    keys, _ = KeyFile().create(
        "a", TenantPolicy(("m", "n"), rate_per_s=5, burst=2, quota_per_day=9)
    )
    keys, _ = keys.create("b")
    entries = map_entries(keys)
    assert entries["access"] == [("a/m", "1"), ("a/n", "1")] and entries["open"] == [("b", "1")]
    assert dict(entries["rate"]) == {"a": "7", "b": str(UNLIMITED)}
    assert dict(entries["quota"]) == {"a": "9", "b": str(UNLIMITED)}
    revoked, _ = keys.revoke(tenant="a")
    assert [tenant for _, tenant in map_entries(revoked)["keys"]] == ["b"]


def test_refusals_escape_their_variables_per_protocol() -> None:
    refusal = Refusal(429, "tenant {txn.maas_tenant} is over 100% of it", "TRUE", 1)
    http = refusal.http()
    assert "%[var(txn.maas_tenant),json(utf8s)]" in http and "100%% of it" in http
    assert "hdr retry-after 1" in http and "retry after 1 s" in http
    grpc = refusal.grpc()
    assert "grpc-status 8" in grpc and "%[var(txn.maas_tenant),url_enc]" in grpc
    assert "100%%25%%20of" in grpc  # percent-encoded, then % doubled for HAProxy


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("401", AuthenticationError),
        ("StatusCode.UNAUTHENTICATED", AuthenticationError),
        ("403", PermissionDeniedError),
        ("StatusCode.PERMISSION_DENIED", PermissionDeniedError),
        ("429", RateLimitedError),
        ("StatusCode.RESOURCE_EXHAUSTED", RateLimitedError),
    ],
)
def test_key_refusals_map_to_typed_errors(status: str, error: type[Exception]) -> None:
    raised = InferenceServerException("tenant a has used its daily quota; retry after 60 s", status)
    mapped = map_error(raised, model="m")
    assert type(mapped) is error
    if isinstance(mapped, RateLimitedError):
        assert mapped.retry_after_s == 60


def test_clients_send_the_key_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAAS_API_KEY", "from-env")
    assert ClientOptions.create("h:1").api_key == "from-env"
    assert ClientOptions.create("h:1", api_key="given").api_key == "given"
    assert call_kwargs("grpc", 5.0, "k")["headers"] == {"authorization": "Bearer k"}
    assert "headers" not in call_kwargs("http", 5.0)


def test_keys_are_required_by_default_only_off_loopback(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert chosen_key_file("127.0.0.1", tmp_path / "k.json", None) is None
    assert chosen_key_file("0.0.0.0", tmp_path / "k.json", None) == tmp_path / "k.json"
    assert chosen_key_file("127.0.0.1", tmp_path / "k.json", True) == tmp_path / "k.json"
    assert chosen_key_file("10.1.2.3", tmp_path / "k.json", False) is None


def audit_line(
    time_ms: int, tenant: str, status: int, grpc_status: str = "", infer: str = "1"
) -> bytes:
    fields = {
        "time": time_ms, "tenant": tenant, "model": "m", "version": "", "infer": infer,
        "protocol": "grpc" if grpc_status else "http", "status": status,
        "grpc_status": grpc_status, "latency_ms": 12, "server_ms": 10, "bytes_in": 100,
        "bytes_out": 50, "items": "4" if infer else "-",
    }  # fmt: skip
    return json.dumps(fields).encode()


def test_audit_entries_get_an_iso_time_and_say_what_failed() -> None:
    entry = entry_of(audit_line(1_764_633_600_123, "a", 200))
    assert entry is not None and entry["time"] == "2025-12-02T00:00:00.123Z"
    assert entry["call"] == "infer" and list(entry) == list(FIELDS)
    assert not failed(entry)
    assert failed({"status": 429}) and failed({"status": 200, "grpc_status": "8"})
    unset = entry_of(audit_line(0, "-", 200, grpc_status="-"))
    assert unset is not None and unset["tenant"] == "" and not failed(unset)
    assert entry_of(b"not json") is None


def test_the_audit_file_rotates_by_size_and_usage_reads_every_part(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    out = RotatingFile(path, max_bytes=1000, backups=3)  # 4 lines a file: 3 files
    for second in range(12):
        entry = entry_of(audit_line(1_764_633_600_000 + second * 1000, "a", 200))
        assert entry is not None
        out.write(json.dumps(entry) + "\n")
    out.close()
    files = audit_files(path)
    assert files[-1] == path and len(files) > 1 and all(f.stat().st_size <= 1000 for f in files)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = UsageReport.of(read_entries(files), "2025-12-02T00:00:05", "2025-12-02T00:00:08")
    assert report.rows[("a", "m", "http")].requests == 3
    header, row = report.csv().splitlines()[:2]
    assert header.startswith("tenant,model,protocol,requests,failures,items,tokens,bytes_in,")
    assert row == "a,m,http,3,0,12,0,300,150,0.036,0.030"


def test_usage_counts_inference_only() -> None:
    usage = Usage()
    for line in (audit_line(0, "a", 200), audit_line(0, "a", 503)):
        entry = entry_of(line)
        assert entry is not None
        usage.add(entry)
    assert (usage.requests, usage.failures, usage.bytes_in, usage.items) == (2, 1, 200, 8)
    other = entry_of(audit_line(0, "a", 200, infer=""))
    assert other is not None and other["call"] == "other" and other["items"] == 0
    assert not UsageReport.of([other], "", "").rows


def test_the_self_signed_certificate_names_this_machine_and_is_reused(tmp_path: Path) -> None:
    from cryptography import x509

    cert, key, made = self_signed_certificate(tmp_path / "tls", "0.0.0.0")
    assert made and stat.S_IMODE(key.stat().st_mode) == 0o600
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "localhost" in names.value.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    assert self_signed_certificate(tmp_path / "tls", "0.0.0.0") == (cert, key, False)


TOKENIZER_PAGE = """# HELP maas_tokenizer_tokens_total Tokens
# TYPE maas_tokenizer_tokens_total counter
maas_tokenizer_tokens_total{tenant="a",model="minilm_text",protocol="http"} %d
maas_tokenizer_tokens_total{tenant="b",model="minilm_text",protocol="grpc"} 7
nv_inference_count{model="minilm"} 3
"""


def test_tokens_are_read_from_the_tokenizers_counters_as_new_lines() -> None:
    counters = TokenCounters("")
    assert token_counts(TOKENIZER_PAGE % 40) == {
        ("a", "minilm_text", "http"): 40, ("b", "minilm_text", "grpc"): 7,
    }  # fmt: skip
    pages = iter([TOKENIZER_PAGE % 40, TOKENIZER_PAGE % 45, TOKENIZER_PAGE % 3])
    counters.read = lambda: token_counts(next(pages))  # type: ignore[method-assign]
    first, second, restarted = (counters.new_lines() for _ in range(3))
    assert [(line["tenant"], line["tokens"]) for line in first] == [("a", 40), ("b", 7)]
    assert [(line["tenant"], line["tokens"]) for line in second] == [("a", 5)]  # b: no change
    assert [(line["tenant"], line["tokens"]) for line in restarted] == [("a", 3)]  # from 0
    assert list(first[0]) == list(TOKEN_FIELDS) and first[0]["call"] == "tokens"
    usage = UsageReport.of([*first, *second], "", "").rows[("a", "minilm_text", "http")]
    assert (usage.tokens, usage.requests) == (45, 0)
