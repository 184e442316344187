from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maas.cli import app
from maas.serve.gateway import HAPROXY_ENV
from tests.tiny_bert import LABELS, make_tiny_bert

runner = CliRunner()


def test_export_fails_with_one_line_listing_known_models_when_name_is_unknown(
    tmp_path: Path,
) -> None:
    result = runner.invoke(app, ["export", "resnet51", "--repository", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown model 'resnet51'; known models: digits_cnn, minilm, resnet50" in result.output
    assert "Traceback" not in result.output


def test_export_list_names_every_model_and_what_its_weights_are() -> None:
    result = runner.invoke(app, ["export", "--list"])
    assert result.exit_code == 0
    assert "digits_cnn" in result.output and "trained here" in result.output
    assert "resnet50" in result.output and "random" in result.output


def test_serve_fails_clearly_when_repository_is_missing(tmp_path: Path) -> None:
    ports = ["--http-port", "18990", "--grpc-port", "18991", "--metrics-port", "18992"]
    result = runner.invoke(app, ["serve", "--repository", str(tmp_path / "nowhere"), *ports])
    assert result.exit_code == 1
    assert "does not exist; run `maas export`" in result.output


def test_serve_refuses_identical_ports(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["serve", "--repository", str(tmp_path), "--http-port", "8000", "--grpc-port", "8000"]
    )
    assert result.exit_code == 1
    assert "ports must differ" in result.output


def test_infer_refuses_unknown_protocol(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"x")
    result = runner.invoke(app, ["infer", "digits_cnn", str(image), "--protocol", "udp"])
    assert result.exit_code == 2
    assert "protocol must be http or grpc" in result.output


def test_export_hf_writes_text_classifier_with_labels_from_id2label(tmp_path: Path) -> None:
    folder = make_tiny_bert(tmp_path / "bert", "text-classification")
    repository = tmp_path / "repo"
    result = runner.invoke(
        app,
        ["export", "--hf", str(folder), "--task", "text-classification", "--name", "sentiment",
         "--repository", str(repository), "--target", "onnxruntime-fp32"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sentiment: " in result.output and "top-1 agreement 1.0000" in result.output
    assert (repository / "sentiment_text" / "labels.txt").read_text().split() == list(
        LABELS.values()
    )
    assert (repository / "sentiment_tokenizer" / "1" / "tokenizer.json").is_file()


def test_export_hf_refuses_unknown_task(tmp_path: Path) -> None:
    folder = make_tiny_bert(tmp_path / "bert", "feature-extraction")
    result = runner.invoke(app, ["export", "--hf", str(folder), "--task", "ner", "--name", "x"])
    assert result.exit_code == 1
    assert "task must be one of feature-extraction, text-classification, got 'ner'" in result.output


def test_export_hf_says_when_folder_is_not_a_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--hf", str(tmp_path), "--name", "x"])
    assert result.exit_code == 1
    assert "is not a Hugging Face model folder (no config.json)" in result.output


def test_export_hf_needs_a_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--hf", str(tmp_path)])
    assert result.exit_code == 2
    assert "give --name" in result.output


def test_bench_front_without_haproxy_fails_with_one_line_before_starting_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-haproxy"
    monkeypatch.setenv(HAPROXY_ENV, str(missing))
    result = runner.invoke(
        app, ["bench-front", "--repository", str(tmp_path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: {HAPROXY_ENV}={missing} is not an executable file"
    ]
    assert not (tmp_path / "out").exists()


FRONT = ["front", "--upstream", "127.0.0.1:9", "--upstream-grpc", "127.0.0.1:10"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--check", "-r", "/nonexistent"], "records no export"),
        (["bench", "resnet50_image", "--users", "a,b"], "--users must be a comma-separated"),
        (["bench", "resnet50_image", "--rate", "5", "--users", "1,2"], "give one --users value"),
        (["serve", "--tls-cert", "/nonexistent/cert.pem"], "needs both a certificate and its key"),
        (
            [*FRONT, "--tls-cert", "/nonexistent/cert.pem"],
            "needs both a certificate and its key",
        ),
        (
            [*FRONT, "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
            "TLS file /nonexistent/cert.pem does not exist",
        ),
        (["infer", "resnet50", "x.jpg", "--url", "127.0.0.1:9", "--timeout", "2"], "unreachable"),
    ],
)
def test_failures_print_one_error_line_and_exit_1(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]


def test_the_terminal_shows_maas_progress_but_not_other_libraries_advice() -> None:
    from maas.cli.common import OwnProgressOnly

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    keep = OwnProgressOnly()
    assert keep.filter(record("maas.export", logging.INFO))
    assert not keep.filter(record("root", logging.WARNING))  # onnxruntime's quantizer advice
    assert not keep.filter(record("locust.runners", logging.INFO))
    assert keep.filter(record("root", logging.ERROR))


def test_loading_a_checkpoint_draws_no_third_party_progress_bar(tmp_path: Path) -> None:
    """transformers draws 'Loading weights' bars on stderr unless maas's set-up quiets them."""
    import os
    import subprocess
    import sys

    from tests.tiny_bert import make_tiny_bert

    folder = make_tiny_bert(tmp_path / "bert", "feature-extraction")
    script = (
        "import sys; from maas.cli.common import setup_logging; setup_logging(); "
        "from transformers import AutoModel; AutoModel.from_pretrained(sys.argv[1])"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    loud = subprocess.run(
        [sys.executable, "-c", script.replace("setup_logging(); ", ""), str(folder)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    quiet = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    assert "Loading weights" in loud.stderr, "the bar this test guards against is not drawn"
    assert "Loading weights" not in quiet.stderr, quiet.stderr


def test_keys_and_usage_name_what_was_wrong_with_their_input(tmp_path: Path) -> None:
    keys = str(tmp_path / "keys.json")
    create = ["keys", "create", "--tenant", "a", "--file", keys]
    bad_rate = runner.invoke(app, [*create, "--rate", "fast"])
    assert bad_rate.exit_code == 2 and "--rate is requests per second" in bad_rate.output
    created = runner.invoke(app, create)
    assert created.exit_code == 0 and "maas_" in created.output
    unknown = runner.invoke(app, ["keys", "rotate", "--tenant", "b", "--file", keys])
    assert unknown.exit_code == 1 and "no tenant 'b' in the key file" in unknown.output
    audit = str(tmp_path / "audit.jsonl")
    missing = runner.invoke(app, ["usage", "--audit-log", audit])
    assert missing.exit_code == 1 and f"no audit log at {audit}" in missing.output
    (tmp_path / "audit.jsonl").write_text("")
    wrong = runner.invoke(app, ["usage", "--audit-log", audit, "--format", "xml"])
    assert wrong.exit_code == 2 and "--format must be csv or md" in wrong.output


def test_monitor_and_top_refuse_a_metrics_url_they_cannot_use(tmp_path: Path) -> None:
    written = runner.invoke(
        app, ["monitor", "--triton-metrics", "triton:8002", "--write", str(tmp_path)]
    )
    assert written.exit_code == 1 and "must be http(s)://host:port/path" in written.output
    unreachable = runner.invoke(
        app,
        ["top", "--once", "--interval", "0.2", "--triton-metrics", "http://127.0.0.1:9/metrics"],
    )
    assert unreachable.exit_code == 1 and "cannot read metrics from" in unreachable.output
