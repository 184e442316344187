"""torch → ONNX with dynamic batch (and sequence) axes."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from maas.base.errors import ExportError

from .spec import Inputs, ModelSpec

MIN_OPSET = 17
MAX_EXPORT_BATCH = 1024  # torch.export wants bounds on symbolic dimensions
MAX_EXPORT_SEQUENCE = 4096
EXAMPLE_BATCH = 2
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def dynamic_shapes(spec: ModelSpec) -> dict[str, dict[int, torch.export.Dim]]:
    """Axis 0 of every input is the batch; each -1 dim is one shared dynamic axis per position."""
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    dynamic_dims: dict[int, torch.export.Dim] = {}
    shapes = {}
    for tensor in spec.inputs:
        axes = {0: batch}
        for position, size in enumerate(tensor.dims, start=1):
            if size == -1:
                name = f"axis{position}"
                axes[position] = dynamic_dims.setdefault(
                    position, torch.export.Dim(name, min=1, max=MAX_EXPORT_SEQUENCE)
                )
        shapes[tensor.name] = axes
    return shapes


def export_onnx(spec: ModelSpec, module: torch.nn.Module, examples: Inputs, path: Path) -> None:
    """Write module as one self-contained ONNX file; forward's parameters must be the inputs."""
    if spec.opset < MIN_OPSET:
        raise ExportError(f"{spec.name}: opset {spec.opset} < {MIN_OPSET}, the minimum supported")
    names = [tensor.name for tensor in spec.inputs]
    parameters = list(inspect.signature(module.forward).parameters)[: len(names)]
    if parameters != names:
        raise ExportError(f"{spec.name}: forward() takes {parameters}, the spec declares {names}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = tuple(torch.from_numpy(examples[name][:EXAMPLE_BATCH].copy()) for name in names)
    # Quiet the converters: "torchvision is not installed", optimiser pass chatter.
    for logger in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    chatter = io.StringIO()  # the exporter prints progress lines; keep them for error reports
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                sample,
                str(path),
                input_names=names,
                output_names=[output.name for output in spec.outputs],
                dynamic_shapes=dynamic_shapes(spec),
                opset_version=spec.opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # torch raises many unrelated types; all mean "cannot export"
        detail = chatter.getvalue().strip().splitlines()[-5:]
        raise ExportError(
            f"{spec.name}: torch.onnx.export failed: {error}\n" + "\n".join(detail)
        ) from error
    strip_stack_traces(path)
    onnx.checker.check_model(str(path))


def strip_stack_traces(path: Path) -> None:
    """Drop the exporter's per-node Python stack traces.

    They hold absolute source paths, so the same model exported from another checkout would
    get other bytes; nothing reads them at run time.
    """
    model = onnx.load(str(path))
    nodes = list(model.graph.node) + [
        node for function in model.functions for node in function.node
    ]
    for node in nodes:
        kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE_KEY]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))
