"""Triton model configs built through Triton's own protobuf (model_config_pb2), never as text."""

from __future__ import annotations

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.triton.config import DEFAULT_ARTIFACTS, LABELS_FILE
from maas.base.triton.names import scores_view
from maas.base.triton.parameters import ModelParameters

from .spec import Batching, ModelSpec, Preprocessing, TensorSpec
from .targets import Target

ONNX_FILE = "model.onnx"

_DATA_TYPES = {
    "float32": mc.TYPE_FP32,
    "float16": mc.TYPE_FP16,
    "int64": mc.TYPE_INT64,
    "int32": mc.TYPE_INT32,
    "uint8": mc.TYPE_UINT8,
    "bool": mc.TYPE_BOOL,
}
_FORMATS = {None: mc.ModelInput.FORMAT_NONE, "NCHW": mc.ModelInput.FORMAT_NCHW}


def data_type(dtype: str) -> int:
    """Triton's DataType for a numpy dtype name."""
    try:
        return int(_DATA_TYPES[np.dtype(dtype).name])
    except KeyError:
        raise ValueError(
            f"dtype {dtype!r} has no Triton type; supported: {sorted(_DATA_TYPES)}"
        ) from None


def model_input(tensor: TensorSpec) -> mc.ModelInput:
    """A ModelInput with its declared layout."""
    return mc.ModelInput(
        name=tensor.name,
        data_type=data_type(tensor.dtype),
        format=_FORMATS[tensor.format],
        dims=list(tensor.dims),
    )


def model_output(tensor: TensorSpec, labels: bool) -> mc.ModelOutput:
    """A ModelOutput, with the labels file attached for the classification extension."""
    output = mc.ModelOutput(
        name=tensor.name, data_type=data_type(tensor.dtype), dims=list(tensor.dims)
    )
    if labels:
        output.label_filename = LABELS_FILE
    return output


def apply_batching(config: mc.ModelConfig, batching: Batching, gpu: bool = False) -> None:
    """Dynamic batching and instance groups (on GPUs for GPU targets)."""
    config.max_batch_size = batching.max_batch_size
    config.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes)
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    # No default_queue_policy: any queue size or timeout in it turns Triton's payload prefetching
    # off, and then its batcher can lose a wake-up and hold a request 500 ms (scheduler_utils.cc,
    # dynamic_batch_scheduler.cc). Bounds, shedding and deadlines are the gateway's.
    kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU
    config.instance_group.append(mc.ModelInstanceGroup(count=batching.instance_count, kind=kind))


def model_config(spec: ModelSpec, target: Target) -> mc.ModelConfig:
    """The model itself, for the target's native Triton backend; every version is served."""
    config = mc.ModelConfig(name=spec.name, platform=target.platform, backend=target.backend)
    if target.artifact != DEFAULT_ARTIFACTS.get(target.backend):
        config.default_model_filename = target.artifact
    config.input.extend(model_input(tensor) for tensor in spec.inputs)
    labelled = spec.classification_output is not None
    config.output.extend(model_output(output, labels=labelled) for output in spec.outputs)
    apply_batching(config, spec.batching, gpu=target.gpu)
    config.version_policy.all.SetInParent()  # clients pin versions; unpinned gets the newest
    for key, value in target.parameters.items():
        config.parameters[key].string_value = value
    # The padding mask lets a runtime that pads variable-length requests count real tokens.
    ModelParameters(target.name, target.precision, spec.padding_mask, task=spec.served_task).write(
        config
    )
    return config


def preprocess_name(spec: ModelSpec, preprocessing: Preprocessing) -> str:
    """Name of the Python model that prepares the spec's inputs."""
    return preprocessing.companions.prepare(spec.name)


def preprocess_config(spec: ModelSpec, preprocessing: Preprocessing) -> mc.ModelConfig:
    """The Python-backend model that turns raw bytes (images, texts) into the model's inputs."""
    config = mc.ModelConfig(name=preprocess_name(spec, preprocessing), backend="python")
    raw = mc.ModelInput(name=preprocessing.companions.raw_input, data_type=mc.TYPE_STRING, dims=[1])
    config.input.append(raw)
    config.output.extend(model_output(tensor, labels=False) for tensor in spec.inputs)
    apply_batching(config, spec.batching)
    for key, value in preprocessing.parameters().items():
        config.parameters[key].string_value = value
    return config


def ensemble_config(spec: ModelSpec, preprocessing: Preprocessing) -> mc.ModelConfig:
    """Raw bytes → preprocess → model, as one model named <model><ensemble suffix>."""
    name = preprocessing.companions.ensemble(spec.name)
    config = mc.ModelConfig(name=name, platform="ensemble")
    config.max_batch_size = spec.batching.max_batch_size
    raw = mc.ModelInput(name=preprocessing.companions.raw_input, data_type=mc.TYPE_STRING, dims=[1])
    config.input.append(raw)
    labelled = spec.classification_output is not None
    config.output.extend(model_output(output, labels=labelled) for output in spec.outputs)
    prepare = config.ensemble_scheduling.step.add()
    prepare.model_name = preprocess_name(spec, preprocessing)
    prepare.model_version = -1
    prepare.input_map[preprocessing.companions.raw_input] = preprocessing.companions.raw_input
    run = config.ensemble_scheduling.step.add()
    run.model_name = spec.name
    run.model_version = -1
    for tensor in spec.inputs:
        prepare.output_map[tensor.name] = f"{tensor.name}_prepared"
        run.input_map[tensor.name] = f"{tensor.name}_prepared"
    for output in spec.outputs:
        run.output_map[output.name] = output.name
    return config


def has_scores_view(spec: ModelSpec) -> bool:
    """Image classifiers: one input with a pixel layout, and class probabilities."""
    laid_out = len(spec.inputs) == 1 and spec.inputs[0].format is not None
    return laid_out and spec.classification_output is not None


def scores_config(spec: ModelSpec) -> mc.ModelConfig:
    """The classifier as one input → its labelled probabilities only, as an ensemble of one step.

    Clients written for Triton's quickstart classifiers (NVIDIA's `image_client.py`) insist on
    exactly one output; the model itself keeps its logits too.
    """
    output = next(o for o in spec.outputs if o.name == spec.classification_output)
    config = mc.ModelConfig(name=scores_view(spec.name), platform="ensemble")
    config.max_batch_size = spec.batching.max_batch_size
    config.input.append(model_input(spec.inputs[0]))
    config.output.append(model_output(output, labels=True))
    step = config.ensemble_scheduling.step.add()
    step.model_name = spec.name
    step.model_version = -1
    step.input_map[spec.inputs[0].name] = spec.inputs[0].name
    step.output_map[output.name] = output.name
    return config
