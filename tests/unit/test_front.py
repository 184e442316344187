"""The HTTP front's config, the choice of what guards HTTP, and the restart policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from maas.base.errors import FrontUnavailableError, ServerError
from maas.serve.embedded import ServerOptions
from maas.serve.front import (
    NGINX_ENV,
    FrontOptions,
    MiB,
    Nginx,
    render_config,
)
from maas.serve.stack import RestartPolicy, ServingStack, StackOptions, describe_exit

NGINX = Nginx(Path("/usr/sbin/nginx"), (Path("/m/ndk.so"), Path("/m/lua.so")))


def test_config_binds_the_public_port_and_proxies_to_loopback(tmp_path: Path) -> None:
    options = FrontOptions(host="0.0.0.0", port=8000, upstream_port=40123, max_body_bytes=5 * MiB)
    config = render_config(options, NGINX, tmp_path)
    assert "listen 0.0.0.0:8000" in config
    assert "server 127.0.0.1:40123;" in config
    assert f"client_max_body_size {5 * MiB};" in config
    assert f"max_json_bytes = {3 * MiB}" in config
    assert "load_module /m/lua.so;" in config
    assert str(tmp_path) in config and "/var/" not in config  # every file inside the prefix


def test_json_limit_stays_under_the_size_that_crashes_triton() -> None:
    with pytest.raises(ServerError, match="4 MiB"):
        FrontOptions("127.0.0.1", 8000, 8100, max_json_bytes=4 * MiB)
    with pytest.raises(ServerError, match="body limit"):
        FrontOptions("127.0.0.1", 8000, 8100, max_body_bytes=MiB, max_json_bytes=2 * MiB)


def test_a_missing_nginx_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NGINX_ENV, "/nonexistent/nginx")
    with pytest.raises(FrontUnavailableError, match="MAAS_NGINX=/nonexistent/nginx"):
        Nginx.locate()


@pytest.mark.parametrize(("accepted", "http_host"), [(False, "127.0.0.1"), (True, "0.0.0.0")])
def test_without_nginx_http_stays_on_loopback_unless_the_risk_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, accepted: bool, http_host: str
) -> None:
    monkeypatch.setenv(NGINX_ENV, "/nonexistent/nginx")
    server = ServerOptions(tmp_path, host="0.0.0.0", workdir=tmp_path / "work")
    stack = ServingStack(StackOptions(server, allow_unprotected_http=accepted))
    assert stack.front is None
    assert stack.triton.http_host == http_host
    assert stack.triton.options.grpc_port == 8001 and stack.triton.options.host == "0.0.0.0"
    assert ("UNPROTECTED" in stack.http_protection) == accepted


def test_with_nginx_triton_http_moves_to_a_loopback_port(tmp_path: Path) -> None:
    try:
        Nginx.locate()
    except FrontUnavailableError as missing:
        pytest.fail(f"tests/setup.sh installs nginx: {missing}")
    server = ServerOptions(tmp_path, host="0.0.0.0", http_port=8000, workdir=tmp_path / "work")
    stack = ServingStack(StackOptions(server))
    assert stack.front is not None
    assert stack.triton.http_host == "127.0.0.1"
    assert stack.triton.options.http_port == stack.front.options.upstream_port != 8000
    assert stack.http_url == "0.0.0.0:8000"


def test_restart_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(1) == "exited with code 1"
