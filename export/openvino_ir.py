"""Build OpenVINO IRs in a fresh interpreter: `python -m maas.export.openvino_ir …`.

OpenVINO names the nodes it creates from a process-wide counter, so the same model converted
after other work gets other names and other bytes. Converting in a new process makes the IR
depend on the model alone, which keeps exports byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from maas.base.errors import ExportError

# OpenVINO's and NNCF's telemetry post usage data from a process forked by a worker thread;
# a fork while the main thread imports can deadlock it on the import and logging locks (seen:
# the README's demo hung for good in an int8 quantisation, for a user without a telemetry
# consent file). Both libraries skip telemetry in CI; the child declares itself one.
NO_TELEMETRY = {"CI": "true", "NNCF_CI": "1"}
TIMEOUT_S = 1800  # far beyond any conversion seen (ResNet-50 int8: about a minute)


def run(*args: str) -> None:
    """Run one conversion in a fresh interpreter; ExportError with its output on failure."""
    command = [sys.executable, "-m", "maas.export.openvino_ir", *args]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **NO_TELEMETRY},
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as hung:
        raise ExportError(f"OpenVINO conversion {args[0]} did not end in {TIMEOUT_S} s") from hung
    if result.returncode != 0:
        raise ExportError(f"OpenVINO conversion failed:\n{result.stderr.strip()[-2000:]}")


def convert(onnx: Path, xml: Path) -> None:
    """An fp32 IR of an ONNX file."""
    import openvino as ov

    ov.save_model(ov.convert_model(onnx), xml, compress_to_fp16=False)


def quantize(onnx: Path, xml: Path, samples: Path, transformer: bool) -> None:
    """An int8 IR by NNCF post-training quantisation on the samples (an .npz of batches)."""
    import nncf
    import openvino as ov

    with np.load(samples) as data:
        names = sorted({key.split("/", 1)[1] for key in data.files})
        count = len(data.files) // len(names)
        items = [{name: data[f"{i}/{name}"] for name in names} for i in range(count)]
    quantized = nncf.quantize(
        ov.convert_model(onnx),
        nncf.Dataset(items),
        subset_size=len(items),
        model_type=nncf.ModelType.TRANSFORMER if transformer else None,
    )
    ov.save_model(quantized, xml, compress_to_fp16=False)


def save_samples(items: list[dict[str, np.ndarray]], path: Path) -> Path:
    """Calibration items as one .npz the child process reads."""
    np.savez(
        path,
        **{f"{i}/{name}": array for i, item in enumerate(items) for name, array in item.items()},
    )
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line of the child process."""
    parser = argparse.ArgumentParser(prog="python -m maas.export.openvino_ir")
    parser.add_argument("action", choices=["convert", "quantize"])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("xml", type=Path)
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--transformer", action="store_true")
    args = parser.parse_args(argv)
    if args.action == "convert":
        convert(args.onnx, args.xml)
    else:
        quantize(args.onnx, args.xml, args.samples, args.transformer)


if __name__ == "__main__":
    main()
