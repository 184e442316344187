"""ONNX Runtime on the CPU execution provider."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from . import Arrays, RuntimeOptions


class OnnxRuntimeRunner:
    """An ONNX file in an ONNX Runtime session."""

    def __init__(self, artifact: Path, options: RuntimeOptions) -> None:
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = options.threads
        self.session = ort.InferenceSession(
            str(artifact), settings, providers=["CPUExecutionProvider"]
        )
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.precision = options.precision

    def infer(self, inputs: Arrays) -> Arrays:
        """One session run."""
        return dict(
            zip(self.output_names, self.session.run(self.output_names, inputs), strict=True)
        )

    def describe(self) -> dict[str, str]:
        """Runtime, version and precision."""
        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "precision": self.precision,
            "device": "CPUExecutionProvider",
        }


def load(artifact: Path, options: RuntimeOptions) -> OnnxRuntimeRunner:
    """Open an ONNX file."""
    return OnnxRuntimeRunner(artifact, options)
