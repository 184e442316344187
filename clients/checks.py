"""Requests checked against a model's `ModelInfo` before they are sent, and answers after.

Input names and numpy dtypes are checked here so a caller's mistake reads as one clear
`InvalidInputError`; shapes are left to tritonclient (when it packs the arrays) and the server.
The checked request is built into tritonclient's objects for the protocol; the answer is checked
to hold every requested output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from maas.base.errors import InferenceFailedError, InvalidInputError

from .info import Array, ModelInfo, TensorInfo
from .transport import Protocol, tensor_module


def triton_datatype(dtype: np.dtype[Any]) -> str | None:
    """Return the Triton datatype for a numpy dtype (object and bytes_ are BYTES), or None."""
    datatype = np_to_triton_dtype(dtype)
    return None if datatype is None else str(datatype)


def check_top_k(top_k: int) -> None:
    """Reject a top_k that asks for no classes."""
    if top_k < 1:
        raise InvalidInputError(f"top_k must be >= 1, got {top_k}")


# --- inputs --------------------------------------------------------------------------------


def _numpy_hint(datatype: str) -> str:
    """Describe the numpy array that carries a Triton datatype, for error messages."""
    if datatype == "BYTES":
        return "a numpy array of dtype object holding bytes"
    np_type = triton_to_np_dtype(datatype)
    return datatype if np_type is None else f"numpy {np.dtype(np_type)}"


def _expected_inputs(info: ModelInfo) -> str:
    """List a model's inputs for error messages."""
    return ", ".join(tensor.describe() for tensor in info.inputs) or "no inputs"


def _input_name_error(info: ModelInfo, problem: str, names: Sequence[str]) -> InvalidInputError:
    """Say which input names are wrong, e.g. ``has no input(s) 'x'``, and list the right ones."""
    return InvalidInputError(
        f"model {info.name!r} {problem} {', '.join(map(repr, names))}; "
        f"expected inputs: {_expected_inputs(info)}",
        model=info.name,
    )


def _check_input_names(info: ModelInfo, inputs: Mapping[str, Array]) -> None:
    """Refuse inputs the model does not have, and leaving out any it requires."""
    unknown = sorted(set(inputs) - set(info.input_names))
    if unknown:
        raise _input_name_error(info, "has no input(s)", unknown)
    missing = [t.name for t in info.inputs if not t.optional and t.name not in inputs]
    if missing:
        raise _input_name_error(info, "is missing input(s)", missing)


def _check_input_array(model: str, tensor: TensorInfo, array: Array) -> None:
    """Refuse a value that is not a numpy array of the tensor's Triton datatype."""
    want = tensor.datatype
    if not isinstance(array, np.ndarray):
        raise InvalidInputError(
            f"model {model!r} input {tensor.name!r} is a {type(array).__name__}; "
            f"expected {_numpy_hint(want)} ({want})",
            model=model,
        )
    got = triton_datatype(array.dtype)
    if got != want:
        raise InvalidInputError(
            f"model {model!r} input {tensor.name!r} has numpy dtype {array.dtype} "
            f"({got or 'no Triton datatype'}); expected {_numpy_hint(want)} ({want})",
            model=model,
        )


def validate_inputs(info: ModelInfo, inputs: Mapping[str, Array]) -> None:
    """Check input names and datatypes against the model; the server still checks shapes."""
    _check_input_names(info, inputs)
    expected = {tensor.name: tensor for tensor in info.inputs}
    for name, array in inputs.items():
        _check_input_array(info.name, expected[name], array)


def build_infer_inputs(model: str, inputs: Mapping[str, Array], infer_input: Any) -> list[Any]:
    """Wrap validated arrays in the protocol's ``InferInput`` class."""
    built: list[Any] = []
    for name, array in inputs.items():
        tensor = infer_input(name, list(array.shape), triton_datatype(array.dtype))
        try:
            tensor.set_data_from_numpy(array)
        except InferenceServerException as exc:  # raised locally, e.g. shape/dtype mismatch
            raise InvalidInputError(
                f"model {model!r} input {name!r}: {exc.message()}", model=model
            ) from exc
        built.append(tensor)
    return built


# --- outputs -------------------------------------------------------------------------------


def select_outputs(
    info: ModelInfo, outputs: Sequence[str] | None, class_count: int
) -> tuple[str, ...]:
    """Return the output names to request: all when None, else the checked given names."""
    if class_count < 0:
        raise InvalidInputError(f"class_count must be >= 0, got {class_count}", model=info.name)
    if outputs is None:
        return info.output_names
    # A lone string is a Sequence[str] too; treat it as one name rather than its characters.
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    unknown = [name for name in names if name not in info.output_names]
    if unknown:
        raise InvalidInputError(
            f"model {info.name!r} has no output(s) {', '.join(map(repr, unknown))}; "
            f"expected outputs: {', '.join(t.describe() for t in info.outputs)}",
            model=info.name,
        )
    return names


def build_requested_outputs(
    names: Sequence[str], class_count: int, requested_output: Any
) -> list[Any]:
    """Wrap output names in the protocol's ``InferRequestedOutput`` class."""
    return [requested_output(name, class_count=class_count) for name in names]


def extract_outputs(result: Any, names: Sequence[str], model: str) -> dict[str, Array]:
    """Read the named outputs from an ``InferResult`` as numpy arrays."""
    arrays: dict[str, Array] = {}
    for name in names:
        array = result.as_numpy(name)
        if array is None:
            raise InferenceFailedError(
                f"model {model!r}: response has no output {name!r}", model=model
            )
        arrays[name] = array
    return arrays


# --- whole requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedRequest:
    """Protocol objects for one inference call plus the output names to read back."""

    inputs: list[Any]
    outputs: list[Any]
    output_names: tuple[str, ...]


def prepare_request(
    info: ModelInfo,
    inputs: Mapping[str, Array],
    outputs: Sequence[str] | None,
    class_count: int,
    protocol: Protocol,
) -> PreparedRequest:
    """Validate a request against `info` and build the tritonclient objects for `protocol`."""
    validate_inputs(info, inputs)
    names = select_outputs(info, outputs, class_count)
    module = tensor_module(protocol)
    return PreparedRequest(
        inputs=build_infer_inputs(info.name, inputs, module.InferInput),
        outputs=build_requested_outputs(names, class_count, module.InferRequestedOutput),
        output_names=names,
    )
