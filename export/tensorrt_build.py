"""Build TensorRT plans from ONNX, with optimisation profiles for batch and sequence axes.

UNVERIFIED: no GPU and no TensorRT were available where maas was developed and tested.
Follows TensorRT 10's Python API; it only runs where `tensorrt` imports and a GPU exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import RuntimeUnavailableError
from maas.base.runtimes.tensorrt_runner import SIDECAR_SUFFIX, build_environment, require_tensorrt

from .targets import BuildContext, calibration_items

OPTIMAL_SEQUENCE = 128  # the length TensorRT tunes kernels for, within [1, max_length]


def profile_shapes(context: BuildContext) -> dict[str, tuple[tuple[int, ...], ...]]:
    """min/opt/max shapes per input: batch 1..max_batch_size, dynamic dims 1..max_length."""
    spec = context.spec
    top = max(spec.batching.max_batch_size, 1)
    optimal = max(spec.batching.preferred_batch_sizes or (top,))
    longest = int(getattr(spec.preprocessing, "max_length", OPTIMAL_SEQUENCE))
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
    for tensor in spec.inputs:
        low = tuple(1 if d == -1 else d for d in tensor.dims)
        mid = tuple(min(OPTIMAL_SEQUENCE, longest) if d == -1 else d for d in tensor.dims)
        high = tuple(longest if d == -1 else d for d in tensor.dims)
        shapes[tensor.name] = ((1, *low), (optimal, *mid), (top, *high))
    return shapes


class Calibrator:
    """Entropy calibration for int8 on the spec's real inputs (one sample per batch)."""

    def __new__(  # noqa: D102 - builds the TensorRT subclass only where tensorrt imports
        cls, tensorrt: Any, torch: Any, inputs: list[dict[str, np.ndarray]], cache: Path
    ) -> Any:
        class _Calibrator(tensorrt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.items = iter(inputs)
                self.device: dict[str, Any] = {}

            def get_batch_size(self) -> int:
                return 1

            def get_batch(self, names: list[str]) -> list[int] | None:
                item = next(self.items, None)
                if item is None:
                    return None
                self.device = {name: torch.from_numpy(item[name]).cuda() for name in names}
                return [self.device[name].data_ptr() for name in names]

            def read_calibration_cache(self) -> bytes | None:
                return cache.read_bytes() if cache.is_file() else None

            def write_calibration_cache(self, data: bytes) -> None:
                cache.write_bytes(bytes(data))

        return _Calibrator()


def build_plan(context: BuildContext, precision: str, timing_cache: Path) -> None:
    """Parse the ONNX file, set precision and profiles, build, and record the environment."""
    tensorrt, torch = require_tensorrt()
    logger = tensorrt.Logger(tensorrt.Logger.WARNING)
    builder = tensorrt.Builder(logger)
    network = builder.create_network(0)
    parser = tensorrt.OnnxParser(network, logger)
    if not parser.parse(context.onnx.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeUnavailableError(f"TensorRT cannot parse {context.onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_flag(tensorrt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(tensorrt.BuilderFlag.INT8)
        cache = context.folder / "calibration.cache"
        config.int8_calibrator = Calibrator(
            tensorrt, torch, calibration_items(context.calibration), cache
        )
    profile = builder.create_optimization_profile()
    for name, (low, mid, high) in profile_shapes(context).items():
        profile.set_shape(name, low, mid, high)
    config.add_optimization_profile(profile)
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeUnavailableError("TensorRT failed to build the engine; see its log above")
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    target = context.folder / "model.plan"
    target.write_bytes(bytes(plan))
    sidecar = target.with_name(target.name + SIDECAR_SUFFIX)
    sidecar.write_text(json.dumps(build_environment(tensorrt, torch), indent=2) + "\n")
