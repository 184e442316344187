from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from maas.base.errors import ServerDependencyError, ServerError
from maas.serve import stubs
from maas.serve.distribution import TritonDistribution, missing_libraries
from maas.serve.embedded import ServerOptions
from maas.serve.stubs import REGION_PREFIX, remove_regions, stub_of


def test_distribution_is_found_in_the_installed_wheel() -> None:
    found = TritonDistribution.locate()
    assert found.binary.name == "tritonserver"
    assert found.stub.is_file()


def test_missing_stub_names_the_python_versions_that_work(tmp_path: Path) -> None:
    found = TritonDistribution.locate()
    broken = TritonDistribution(
        found.binary, found.python_backend, tmp_path / "no_stub", found.libraries
    )
    with pytest.raises(ServerDependencyError, match=r"no Python backend stub for Python 3\.\d+"):
        broken.check()


def test_missing_binary_says_to_reinstall_nvidia_pytriton(tmp_path: Path) -> None:
    found = TritonDistribution.locate()
    broken = TritonDistribution(
        tmp_path / "tritonserver", found.python_backend, found.stub, found.libraries
    )
    with pytest.raises(ServerDependencyError, match="reinstall nvidia-pytriton"):
        broken.check()


def test_stub_libraries_resolve_with_the_wheels_library_folder() -> None:
    found = TritonDistribution.locate()
    assert missing_libraries(found.stub, found.libraries) == []


def test_stub_reports_unresolved_libraries_when_moved_away_from_the_wheel(tmp_path: Path) -> None:
    found = TritonDistribution.locate()
    moved = tmp_path / "triton_python_backend_stub"
    shutil.copy2(found.stub, moved)  # its RPATH is relative to the wheel's layout
    assert any(name.startswith("libcudart") for name in missing_libraries(moved, tmp_path))


def test_server_options_refuse_port_out_of_range() -> None:
    with pytest.raises(ServerError, match="port 70000 is out of range"):
        ServerOptions(Path("repo"), http_port=70000)


def test_a_stubs_model_and_region_come_from_its_command_line(tmp_path: Path) -> None:
    serving = tmp_path / "repository"
    region = REGION_PREFIX + "1234"
    stub = "/x/backends/python/triton_python_backend_stub"
    command = [stub, f"{serving}/digits_cnn/1/model.py", region, "1048576", "1048576", "123"]
    assert stub_of(command, serving) == ("digits_cnn", region)
    assert stub_of(command, tmp_path / "other") is None, "another server's stub"
    assert stub_of(["/usr/bin/python3", *command[1:]], serving) is None
    assert stub_of([stub, f"{serving}/m/1/model.py", "not-a-region"], serving) is None


def test_only_named_python_backend_regions_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stubs, "SHM_DIR", tmp_path)
    mine, other = REGION_PREFIX + "a", REGION_PREFIX + "b"
    for name in (mine, other, "unrelated"):
        (tmp_path / name).write_bytes(b"")
    assert remove_regions({mine, "unrelated", REGION_PREFIX + "gone", "../" + other}) == [mine]
    assert sorted(path.name for path in tmp_path.iterdir()) == [other, "unrelated"]
