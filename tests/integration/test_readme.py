"""The README's Python example runs as written against a live server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maas.samples import write_held_out_digits
from tests.conftest import RunningServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- tested: [^\n]*-->\n```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README lost its tested Python example"
    return match.group(1)


def test_readme_client_example_runs_against_the_server(
    server: RunningServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (path, truth), *_ = write_held_out_digits(tmp_path, 1)
    path.rename(tmp_path / "digit.png")
    monkeypatch.chdir(tmp_path)
    code = readme_python_example()
    code = code.replace("localhost:8000", server.http_url).replace(
        "localhost:8001", server.grpc_url
    )
    exec(compile(code, str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == str(truth)
    assert printed[2] == "(2, 10)"
    assert "resnet51" in printed[3]
