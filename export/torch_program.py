"""The registry's torch module as a `torch.export` program, cast to the precision a GPU runs.

The program is what the torch runtime loads (`maas.base.runtimes.torch_runner`): the module
itself, traced with the same dynamic batch and sequence axes as the ONNX export, its weights
cast before tracing so the program computes in bf16 (or fp16) throughout. The source module
is left untouched: the fp32 reference every target is gated against comes from it.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch

from maas.base.errors import ExportError
from maas.base.runtimes.torch_runner import DTYPES, ProgramSignature

from .onnx_export import EXAMPLE_BATCH, Axes, bind_to_forward, dynamic_axes
from .spec import Inputs, ModelSpec

PROGRAM_FILE = "model.pt2"


def cast_inputs(examples: Inputs, names: list[str], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Example rows as tensors, floats in dtype (the program's float inputs are dtype too)."""
    tensors = []
    for name in names:
        tensor = torch.from_numpy(examples[name][:EXAMPLE_BATCH].copy())
        tensors.append(tensor.to(dtype) if tensor.is_floating_point() else tensor)
    return tuple(tensors)


def program_shapes(spec: ModelSpec) -> dict[str, Axes]:
    """Batch and -1 axes dynamic, their bounds and relations left to torch.export.

    Unlike the ONNX exporter, torch.export refuses bounds the model narrows (BERT's 512
    positions), so none are given.
    """
    dynamic = torch.export.Dim.DYNAMIC
    return {tensor.name: {axis: dynamic for axis in dynamic_axes(tensor)} for tensor in spec.inputs}


def save_program(
    spec: ModelSpec, module: torch.nn.Module, examples: Inputs, folder: Path, precision: str
) -> Path:
    """Write folder/model.pt2 (and its sidecar) computing in precision; returns the program."""
    if precision not in DTYPES:
        raise ExportError(f"{spec.name}: no torch dtype for precision {precision!r}")
    dtype = getattr(torch, DTYPES[precision])
    names = [tensor.name for tensor in spec.inputs]
    cast = copy.deepcopy(module).to(dtype).eval()
    shapes = bind_to_forward(spec, cast, program_shapes(spec))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(
                cast, cast_inputs(examples, names, dtype), dynamic_shapes=shapes
            )
    except Exception as error:  # torch raises many unrelated types; all mean "cannot export"
        raise ExportError(f"{spec.name}: torch.export failed: {error}") from error
    path = folder / PROGRAM_FILE
    torch.export.save(program, str(path))
    ProgramSignature(tuple(names), tuple(o.name for o in spec.outputs), precision).write(path)
    return path
