"""The `maas` command as a user runs it, against the real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from maas.export.samples import write_held_out_digits, write_photos
from tests.conftest import RunningServer


def maas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maas.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_maas_infer_prints_the_true_label_first_for_held_out_digits(
    server: RunningServer, tmp_path: Path
) -> None:
    digits = write_held_out_digits(tmp_path, 8)
    result = maas(
        "infer", "digits_cnn", *(str(path) for path, _ in digits), "--url", server.http_url
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(digits)
    correct = sum(
        line.split(": ", 1)[1].startswith(f"{truth} (")
        for line, (_, truth) in zip(lines, digits, strict=True)
    )
    assert correct >= 7
    assert all(line.count("(") == 5 for line in lines)  # top-5 by default


def test_maas_infer_prints_five_labels_for_a_jpeg_over_grpc(
    server: RunningServer, tmp_path: Path
) -> None:
    photo = write_photos(tmp_path)[0]
    result = maas("infer", "resnet50", str(photo), "--url", server.grpc_url, "--protocol", "grpc")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("class_") == 5


def test_maas_infer_fails_with_one_line_when_model_is_unknown(
    server: RunningServer, tmp_path: Path
) -> None:
    photo = write_photos(tmp_path)[0]
    result = maas("infer", "resnet51", str(photo), "--url", server.http_url)
    assert result.returncode == 1
    assert "resnet51" in result.stderr
    assert "Traceback" not in result.stderr


def test_maas_infer_fails_clearly_when_no_server_listens(tmp_path: Path) -> None:
    photo = write_photos(tmp_path)[0]
    result = maas("infer", "resnet50", str(photo), "--url", "127.0.0.1:9", "--timeout", "5")
    assert result.returncode == 1
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr


def test_maas_doctor_finds_the_embedded_server() -> None:
    result = maas("doctor")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if "embedded tritonserver" in line)
    assert line.startswith("ok")
