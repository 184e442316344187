"""torch → ONNX with a dynamic batch axis."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from maas.errors import ExportError

from .spec import ModelSpec

MIN_OPSET = 17
MAX_EXPORT_BATCH = 1024  # an upper bound torch.export needs for the symbolic batch dimension


def export_onnx(spec: ModelSpec, module: torch.nn.Module, example: np.ndarray, path: Path) -> None:
    """Write module as a self-contained ONNX file whose first axis is the batch."""
    if spec.opset < MIN_OPSET:
        raise ExportError(f"{spec.name}: opset {spec.opset} < {MIN_OPSET}, the minimum supported")
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)
    sample = torch.from_numpy(np.ascontiguousarray(example[:2]))
    argument = next(iter(_forward_argument_names(module)))
    # Quiet the converters: "torchvision is not installed", optimiser pass chatter.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    chatter = io.StringIO()  # the exporter prints progress lines; keep them for error reports
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (sample,),
                str(path),
                input_names=[spec.input.name],
                output_names=[output.name for output in spec.outputs],
                dynamic_shapes={argument: {0: batch}},
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
    onnx.checker.check_model(str(path))


def _forward_argument_names(module: torch.nn.Module) -> list[str]:
    code = module.forward.__code__
    return list(code.co_varnames[1 : code.co_argcount])
