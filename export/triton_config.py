"""Triton model configs built through Triton's own protobuf (model_config_pb2), never as text."""

from __future__ import annotations

import json

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .spec import Batching, ImagePreprocessing, ModelSpec, TensorSpec

ModelConfig = mc.ModelConfig
LABELS_FILE = "labels.txt"
ONNX_FILE = "model.onnx"
PYTHON_FILE = "model.py"
IMAGE_INPUT = "IMAGE"
PREPROCESS_SUFFIX = "_preprocess"

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


def apply_batching(config: mc.ModelConfig, batching: Batching) -> None:
    """Dynamic batching and CPU instance groups."""
    config.max_batch_size = batching.max_batch_size
    config.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes)
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    config.instance_group.append(
        mc.ModelInstanceGroup(count=batching.instance_count, kind=mc.ModelInstanceGroup.KIND_CPU)
    )


def classifier_config(spec: ModelSpec) -> mc.ModelConfig:
    """The ONNX Runtime classifier itself."""
    config = mc.ModelConfig(name=spec.name, platform="onnxruntime_onnx", backend="onnxruntime")
    config.input.append(model_input(spec.input))
    config.output.extend(model_output(output, labels=True) for output in spec.outputs)
    apply_batching(config, spec.batching)
    return config


def preprocess_config(spec: ModelSpec, preprocessing: ImagePreprocessing) -> mc.ModelConfig:
    """The Python-backend model that decodes image bytes into the classifier's input."""
    config = mc.ModelConfig(name=spec.name + PREPROCESS_SUFFIX, backend="python")
    config.input.append(mc.ModelInput(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1]))
    config.output.append(model_output(spec.input, labels=False))
    apply_batching(config, spec.batching)
    settings = {
        "height": preprocessing.height,
        "width": preprocessing.width,
        "channels": preprocessing.channels,
        "mean": list(preprocessing.mean),
        "std": list(preprocessing.std),
        "resize": preprocessing.resize,
        "center_crop": preprocessing.center_crop,
    }
    for key, value in settings.items():
        config.parameters[key].string_value = json.dumps(value)
    return config


def image_ensemble_config(spec: ModelSpec, ensemble_name: str) -> mc.ModelConfig:
    """Encoded image bytes → preprocess → classifier, as one model."""
    config = mc.ModelConfig(name=ensemble_name, platform="ensemble")
    config.max_batch_size = spec.batching.max_batch_size
    config.input.append(mc.ModelInput(name=IMAGE_INPUT, data_type=mc.TYPE_STRING, dims=[1]))
    config.output.extend(model_output(output, labels=True) for output in spec.outputs)
    preprocess = config.ensemble_scheduling.step.add()
    preprocess.model_name = spec.name + PREPROCESS_SUFFIX
    preprocess.model_version = -1
    preprocess.input_map[IMAGE_INPUT] = IMAGE_INPUT
    preprocess.output_map[spec.input.name] = "preprocessed"
    classify = config.ensemble_scheduling.step.add()
    classify.model_name = spec.name
    classify.model_version = -1
    classify.input_map[spec.input.name] = "preprocessed"
    for output in spec.outputs:
        classify.output_map[output.name] = output.name
    return config


def to_text(config: mc.ModelConfig) -> str:
    """config.pbtxt text for a config."""
    return str(text_format.MessageToString(config))


def from_text(text: str) -> mc.ModelConfig:
    """Parse config.pbtxt text; raises google.protobuf.text_format.ParseError when malformed."""
    return text_format.Parse(text, mc.ModelConfig())
