"""torch → ONNX with dynamic batch (and sequence) axes."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from maas.base.errors import ExportError

from .spec import Inputs, ModelSpec, TensorSpec

MIN_OPSET = 17
MAX_EXPORT_BATCH = 1024  # torch.export wants bounds on symbolic dimensions
MAX_EXPORT_SEQUENCE = 4096
EXAMPLE_BATCH = 2
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


Axes = dict[int, Any]  # axis → torch.export.Dim, or Dim.DYNAMIC


def dynamic_shapes(spec: ModelSpec) -> dict[str, Axes]:
    """Axis 0 of every input is the batch; each -1 dim is one shared dynamic axis per position.

    Where a spec names its axes (related axes: a decoder's mask spans past + seq), every dynamic
    axis is Dim.DYNAMIC and torch.export works out how they relate.
    """
    if any(tensor.axes for tensor in spec.inputs):
        return {
            tensor.name: {axis: torch.export.Dim.DYNAMIC for axis in dynamic_axes(tensor)}
            for tensor in spec.inputs
        }
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    dynamic_dims: dict[int, torch.export.Dim] = {}
    shapes = {}
    for tensor in spec.inputs:
        axes: Axes = {0: batch}
        for position, size in enumerate(tensor.dims, start=1):
            if size == -1:
                name = f"axis{position}"
                axes[position] = dynamic_dims.setdefault(
                    position, torch.export.Dim(name, min=1, max=MAX_EXPORT_SEQUENCE)
                )
        shapes[tensor.name] = axes
    return shapes


def dynamic_axes(tensor: TensorSpec) -> list[int]:
    """The batch axis and the positions of the tensor's -1 dims."""
    return [0, *(position for position, size in enumerate(tensor.dims, start=1) if size == -1)]


def bind_to_forward(
    spec: ModelSpec, module: torch.nn.Module, shapes: dict[str, Axes]
) -> dict[str, Any]:
    """Dynamic shapes keyed as forward() takes them: a trailing *args gets the rest as a tuple.

    forward's named parameters must be the spec's first inputs, in order.
    """
    names = [tensor.name for tensor in spec.inputs]
    parameters = list(inspect.signature(module.forward).parameters.values())
    named = [p.name for p in parameters if p.kind != p.VAR_POSITIONAL][: len(names)]
    rest = names[len(named) :]
    variadic = [p.name for p in parameters if p.kind == p.VAR_POSITIONAL]
    if names[: len(named)] != named or (rest and not variadic):
        raise ExportError(f"{spec.name}: forward() takes {named}, the spec declares {names}")
    bound: dict[str, Any] = {name: shapes[name] for name in named}
    if rest:
        bound[variadic[0]] = tuple(shapes[name] for name in rest)
    return bound


def export_onnx(spec: ModelSpec, module: torch.nn.Module, examples: Inputs, path: Path) -> None:
    """Write module as one self-contained ONNX file; forward's parameters must be the inputs."""
    if spec.opset < MIN_OPSET:
        raise ExportError(f"{spec.name}: opset {spec.opset} < {MIN_OPSET}, the minimum supported")
    names = [tensor.name for tensor in spec.inputs]
    shapes = bind_to_forward(spec, module, dynamic_shapes(spec))
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
                dynamic_shapes=shapes,
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
    name_dims(spec, path)
    onnx.checker.check_model(str(path))


def name_dims(spec: ModelSpec, path: Path) -> None:
    """Replace torch.export's symbols (s10, s53) with the spec's axis names, where it names them.

    The graph's inputs and outputs then read [batch, seq], [batch, heads, past + seq, head_dim].
    """
    if not any(tensor.axes for tensor in spec.inputs):
        return
    model = onnx.load(str(path))
    symbols: dict[str, str] = {}
    graph_inputs = {value.name: value for value in model.graph.input}
    for tensor in spec.inputs:
        dims = graph_inputs[tensor.name].type.tensor_type.shape.dim
        for axis, name in zip(dynamic_axes(tensor), ("batch", *tensor.axes), strict=True):
            symbols.setdefault(dims[axis].dim_param, name)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, symbols)) + r")\b")
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda found: symbols[found.group(1)], dim.dim_param)
    onnx.save(model, str(path))


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
