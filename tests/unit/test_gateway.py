"""The gateway's config (checked by HAProxy itself), admission limits, the choice of ports."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import FrontUnavailableError, ServerError
from maas.base.triton.endpoints import free_port
from maas.serve.embedded import ServerOptions
from maas.serve.gateway import HAPROXY_ENV, Gateway, HAProxy
from maas.serve.gateway_config import (
    SHM_REPLICATED,
    GatewayOptions,
    MiB,
    ModelLimit,
    Upstream,
    backend_name,
    refusal_files,
    render_config,
    render_settings,
)
from maas.serve.keys import KeyFile, TenantPolicy
from maas.serve.replica import RestartPolicy, describe_exit
from maas.serve.stack import ServingStack, StackOptions

KEY = "k" * 24


def options(**changes: object) -> GatewayOptions:
    settings: dict[str, object] = {
        "host": "0.0.0.0",
        "http_port": 8000,
        "grpc_port": 8001,
        "metrics_port": 8003,
        "upstreams": (Upstream("127.0.0.1", 40123, 40124),),
        "limits": {"digits_cnn": ModelLimit(4, 8, 250)},
    }
    settings.update(changes)
    return GatewayOptions(**settings)  # type: ignore[arg-type]


def haproxy_accepts(config: GatewayOptions, folder: Path) -> subprocess.CompletedProcess[str]:
    gateway = Gateway(config, folder)
    gateway.write_files()
    command = [str(gateway.haproxy.binary), "-c", "-f", str(gateway.config_path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_config_binds_the_public_ports_and_proxies_to_loopback(tmp_path: Path) -> None:
    config = render_config(options(max_body_bytes=5 * MiB), tmp_path)
    settings = render_settings(options(max_body_bytes=5 * MiB))
    assert "bind 0.0.0.0:8000\n" in config
    assert "bind 0.0.0.0:8001 proto h2\n" in config
    assert "server triton1 127.0.0.1:40123" in config
    assert "server triton1 127.0.0.1:40124 proto h2" in config
    assert f"max_body_bytes = {5 * MiB}," in settings  # the Lua checks enforce it
    assert "/var/" not in config  # every file inside the prefix or beside the code


def test_haproxy_accepts_the_config_it_is_given(tmp_path: Path) -> None:
    for config in (options(), options(control_key_sha256="ab" * 32, upstream_control_key=KEY)):
        checked = haproxy_accepts(config, tmp_path / str(len(config.control_key_sha256)))
        assert checked.returncode == 0, checked.stdout + checked.stderr


REPLICAS = tuple(Upstream("127.0.0.1", 40200 + 2 * n, 40201 + 2 * n) for n in range(3))


def test_replicas_share_every_backend_with_checks_retries_and_least_connections(
    tmp_path: Path,
) -> None:
    config = options(upstreams=REPLICAS)
    checked = haproxy_accepts(config, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = render_config(config, tmp_path)
    backends = {b.split("\n")[0]: b for b in text.split("\nbackend ")[1:]}
    for name in ("http_triton", "grpc_triton", "http_model_digits_cnn", "grpc_model_digits_cnn"):
        body = backends[name]
        assert "balance leastconn" in body and "retry-on conn-failure empty-response" in body
        assert "option redispatch 1" in body
        assert [line.split()[1] for line in body.splitlines() if "server " in line] == [
            "triton1", "triton2", "triton3",
        ]  # fmt: skip
    checks = [line for line in backends["http_triton"].splitlines() if " check " in line]
    assert len(checks) == 3 and "option httpchk GET /v2/health/ready" in backends["http_triton"]
    assert "track http_triton/triton2" in backends["grpc_model_digits_cnn"]
    assert "maxconn 4 maxqueue 8 track" in backends["http_model_digits_cnn"]  # per replica
    assert '"127.0.0.1:40202",' in render_settings(config)  # model configs from any replica


def test_one_replica_has_no_checks_or_retries(tmp_path: Path) -> None:
    text = render_config(options(), tmp_path)
    assert "retry-on" not in text and " check " not in text and "leastconn" not in text


def test_shared_memory_is_refused_with_several_replicas(tmp_path: Path) -> None:
    refused = render_config(options(upstreams=REPLICAS), tmp_path)
    assert SHM_REPLICATED.split(":")[0] in refused and "grpc-status 9" in refused
    assert SHM_REPLICATED.split(":")[0] not in render_config(options(), tmp_path)


def test_haproxy_accepts_the_config_with_tenants_and_keys(tmp_path: Path) -> None:
    keys, _ = KeyFile().create("team-a", TenantPolicy(("m",), rate_per_s=5, burst=2))
    keys, _ = keys.create("team-b")
    keys.save(tmp_path / "keys.json")
    config = options(
        key_file=tmp_path / "keys.json",
        limits={"m": ModelLimit(2, 2)},
        audit_socket=tmp_path / "audit.sock",
    )
    checked = haproxy_accepts(config, tmp_path / "gateway")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    maps = {path.name: path.read_text() for path in (tmp_path / "gateway").glob("*.map")}
    assert maps["access.map"] == "team-a/m 1\n" and maps["open.map"] == "team-b 1\n"
    assert maps["rate.map"].startswith("team-a 7\n")  # the rate plus its burst, per second
    assert all(key.sha256 in maps["keys.map"] for key in keys.keys)


def test_each_limited_model_gets_an_admission_backend_per_protocol(tmp_path: Path) -> None:
    config = render_config(options(), tmp_path)
    for protocol in ("http", "grpc"):
        section = config.split(f"backend {backend_name(protocol, 'digits_cnn')}\n")[1]
        section = section.split("\nbackend ")[0]
        assert "timeout queue 250ms" in section
        assert "maxconn 4 maxqueue 8" in section
        assert f"errorfile 503 {tmp_path / f'digits_cnn.{protocol}.503'}" in section


def test_refusals_name_the_model_and_its_limit() -> None:
    files = refusal_files("digits_cnn", ModelLimit(4, 8, 250))
    http, grpc = files["digits_cnn.http.503"], files["digits_cnn.grpc.503"]
    assert http.startswith(b"HTTP/1.1 503 ")
    assert b"model 'digits_cnn' is at its limit of 4 requests in flight and 8 waiting" in http
    assert grpc.startswith(b"HTTP/1.1 200 OK") and b"grpc-status: 14\r\n" in grpc
    assert b"grpc-message: model%20%27digits_cnn%27%20is%20at%20its%20limit" in grpc


def test_default_limits_come_from_instances_and_batch() -> None:
    config = mc.ModelConfig(name="m", max_batch_size=16)
    config.instance_group.add(count=2)
    assert ModelLimit.for_config(config, 300) == ModelLimit(32, 32, 300)
    assert (
        ModelLimit.for_config(mc.ModelConfig(name="ensemble", max_batch_size=0)).max_in_flight == 1
    )
    with pytest.raises(ServerError, match="queue ≥ 1"):
        ModelLimit(4, 0)  # HAProxy reads maxqueue 0 as unbounded


def test_model_control_is_refused_without_a_key_and_checked_as_a_digest(tmp_path: Path) -> None:
    closed = render_config(options(), tmp_path)
    assert "return status 403" in closed and "model control is off" in closed
    assert "grpc-status 7" in closed
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    open_ = render_config(
        options(control_key_sha256=digest, upstream_control_key="t" * 24), tmp_path
    )
    assert f"sha2(256),hex -m str -i {digest}" in open_
    assert KEY not in open_  # the user's key is never written down
    assert "set-header maas-control-key " + "t" * 24 in open_


def test_json_limit_stays_under_the_size_that_crashes_triton() -> None:
    with pytest.raises(ServerError, match="4 MiB"):
        options(max_json_bytes=4 * MiB)
    with pytest.raises(ServerError, match="body limit"):
        options(max_body_bytes=MiB, max_json_bytes=2 * MiB)


def test_a_missing_haproxy_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HAPROXY_ENV, "/nonexistent/haproxy")
    with pytest.raises(FrontUnavailableError, match="MAAS_HAPROXY=/nonexistent/haproxy"):
        HAProxy.locate()


def test_the_wheel_brings_haproxy_with_lua_and_the_exporter() -> None:
    built = subprocess.run(
        [str(HAProxy.locate().binary), "-vv"], capture_output=True, text=True, check=True
    ).stdout
    assert "USE_LUA=1" in built and "USE_PROMEX=1" in built
    assert "h2 : mode=HTTP" in built  # gRPC needs the HTTP/2 mux


def test_behind_the_gateway_triton_listens_on_loopback_only(tmp_path: Path) -> None:
    server = ServerOptions(tmp_path, host="0.0.0.0", control_key=KEY, workdir=tmp_path / "work")
    stack = ServingStack(StackOptions(server))
    triton = stack.triton.options
    assert stack.triton.http_host == stack.triton.grpc_host == "127.0.0.1"
    assert 8000 not in (triton.http_port, triton.grpc_port)
    assert stack.triton.admin_key != KEY  # the user's key stays out of Triton's command line
    assert (stack.http_url, stack.grpc_url) == ("0.0.0.0:8000", "0.0.0.0:8001")


def test_without_the_gateway_triton_serves_the_public_ports(tmp_path: Path) -> None:
    server = ServerOptions(tmp_path, host="127.0.0.1", workdir=tmp_path / "work")
    stack = ServingStack(StackOptions(server, gateway=False))
    assert stack.triton.options.http_port == 8000 and stack.triton.options.grpc_port == 8001
    assert "UNPROTECTED" in stack.http_protection


def test_a_taken_stack_metrics_port_fails_the_start_before_triton_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = ServerOptions(tmp_path, host="127.0.0.1", workdir=tmp_path / "work")
        stack = ServingStack(StackOptions(server, stack_metrics_port=port))
        with pytest.raises(ServerError, match=f"127.0.0.1:{port}.*--stack-metrics-port"):
            stack.start()
    assert stack.triton.pid is None and stack.gateway is None


def test_free_ports_are_outside_the_range_of_outgoing_connections() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(port < low or port > high for port in ports)


def test_restart_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(1) == "exited with code 1"
