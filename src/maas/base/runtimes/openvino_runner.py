"""OpenVINO on the CPU: fp32, bf16 (AMX / AVX-512 BF16) and int8 IRs."""

from __future__ import annotations

from pathlib import Path

import openvino as ov

from maas.base.errors import RuntimeUnavailableError

from . import Arrays, RuntimeOptions

PRECISION_HINTS = {
    "fp32": "f32",
    "bf16": "bf16",
    "int8": "bf16",
}  # int8 IRs run non-int8 ops in bf16


def supports_bf16(core: ov.Core) -> bool:
    """Whether the CPU computes bf16 natively (AMX or AVX-512 BF16)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner:
    """An OpenVINO IR (or ONNX file) compiled for the CPU."""

    def __init__(self, artifact: Path, options: RuntimeOptions) -> None:
        core = ov.Core()
        if options.precision not in PRECISION_HINTS:
            known = ", ".join(PRECISION_HINTS)
            raise RuntimeUnavailableError(
                f"OpenVINO precision must be one of {known}, got {options.precision!r}"
            )
        hint = PRECISION_HINTS[options.precision]
        if hint == "bf16" and not supports_bf16(core):
            hint = "f32"  # no native bf16: emulating it would be slower and less exact
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = str(options.threads)
        self.compiled = core.compile_model(core.read_model(str(artifact)), "CPU", config)
        self.output_names = [output.get_any_name() for output in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()
        self.precision = options.precision
        self.hint = hint

    def infer(self, inputs: Arrays) -> Arrays:
        """One synchronous inference; outputs copied out of OpenVINO's buffers."""
        results = self.request.infer(inputs)
        return {
            name: results[output].copy()
            for name, output in zip(self.output_names, self.compiled.outputs, strict=True)
        }

    def describe(self) -> dict[str, str]:
        """Runtime, version, precision and the hint actually used."""
        return {
            "runtime": "openvino",
            "version": ov.__version__,
            "precision": self.precision,
            "device": f"CPU (inference precision {self.hint})",
        }


def load(artifact: Path, options: RuntimeOptions) -> OpenVinoRunner:
    """Compile an IR for the CPU."""
    return OpenVinoRunner(artifact, options)
