"""The README's Python example runs as written against a live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maas.export.samples import write_held_out_digits
from tests.conftest import RunningServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_examples() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"<!-- tested: [^\n]*-->\n```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2, "README lost one of its tested Python examples"
    return list(blocks)


def run_example(code: str, server: RunningServer) -> None:
    code = code.replace("localhost:8000", server.http_url).replace(
        "localhost:8001", server.grpc_url
    )
    exec(compile(code, str(README), "exec"), {})


def test_readme_client_example_runs_against_the_server(
    server: RunningServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (path, truth), *_ = write_held_out_digits(tmp_path, 1)
    path.rename(tmp_path / "digit.png")
    monkeypatch.chdir(tmp_path)
    run_example(readme_python_examples()[0], server)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == str(truth)
    assert printed[2] == "(2, 10)"
    assert "resnet51" in printed[3]


def test_readme_text_example_prints_what_its_comment_says(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_example(readme_python_examples()[1], server)
    assert capsys.readouterr().out.strip() == "(2, 384) 0.67"
