from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import RepositoryError
from maas.base.triton.config import DEFAULT_ARTIFACTS, LABELS_FILE, from_text, to_text
from maas.export import ModelRepository, get_spec, model_names
from maas.export import triton_config as tc
from maas.export.targets import TARGETS, Target


@pytest.mark.parametrize("name", model_names())
def test_model_config_round_trips_through_the_proto(name: str, tmp_path: Path) -> None:
    spec = get_spec(name)
    repository = ModelRepository(tmp_path)
    written = tc.model_config(spec, TARGETS["onnxruntime-fp32"])
    repository.write_config(written)
    parsed = repository.read_config(name)
    assert parsed == written
    assert parsed.backend == "onnxruntime"
    assert parsed.max_batch_size == spec.batching.max_batch_size
    assert list(parsed.dynamic_batching.preferred_batch_size) == list(
        spec.batching.preferred_batch_sizes
    )
    assert parsed.dynamic_batching.max_queue_delay_microseconds == spec.batching.max_queue_delay_us
    # No queue policy: it would turn Triton's prefetching off and bring back the 500 ms holds.
    assert not parsed.dynamic_batching.HasField("default_queue_policy")
    assert parsed.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert [(i.name, tuple(i.dims)) for i in parsed.input] == [
        (t.name, t.dims) for t in spec.inputs
    ]
    labelled = [LABELS_FILE] if spec.classification_output else [""]
    assert [o.label_filename for o in parsed.output] == labelled * len(spec.outputs)


@pytest.mark.parametrize("name", ["digits_cnn", "resnet50"])
def test_image_model_declares_nchw_input(name: str) -> None:
    (model_input,) = tc.model_config(get_spec(name), TARGETS["openvino-bf16"]).input
    assert model_input.format == mc.ModelInput.FORMAT_NCHW


def test_text_model_declares_dynamic_sequence_and_padding_mask() -> None:
    config = tc.model_config(get_spec("minilm"), TARGETS["openvino-bf16"])
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("input_ids", mc.TYPE_INT64, [-1]),
        ("attention_mask", mc.TYPE_INT64, [-1]),
    ]
    assert config.parameters["padding_mask"].string_value == "attention_mask"


@pytest.mark.parametrize("name", [n for n in model_names() if get_spec(n).preprocessing])
def test_ensemble_config_chains_preprocess_into_model(name: str) -> None:
    spec = get_spec(name)
    assert spec.preprocessing is not None
    config = from_text(to_text(tc.ensemble_config(spec, spec.preprocessing)))
    first, second = config.ensemble_scheduling.step
    assert config.name == name + spec.preprocessing.companions.ensemble_suffix
    assert config.platform == "ensemble"
    assert config.input[0].name == spec.preprocessing.companions.raw_input
    assert config.input[0].data_type == mc.TYPE_STRING
    assert first.model_name == tc.preprocess_name(spec, spec.preprocessing)
    for tensor in spec.inputs:
        assert first.output_map[tensor.name] == second.input_map[tensor.name]
    assert second.model_name == name
    assert sorted(second.output_map.values()) == sorted(o.name for o in config.output)


def test_preprocess_config_carries_settings_as_json_parameters() -> None:
    spec = get_spec("resnet50")
    assert spec.preprocessing is not None
    config = tc.preprocess_config(spec, spec.preprocessing)
    assert config.backend == "python"
    assert config.parameters["height"].string_value == "224"
    assert config.parameters["mean"].string_value == "[0.485, 0.456, 0.406]"
    assert config.parameters["center_crop"].string_value == "true"


def test_tokenizer_config_carries_max_length_and_truncation() -> None:
    spec = get_spec("minilm")
    assert spec.preprocessing is not None
    config = tc.preprocess_config(spec, spec.preprocessing)
    assert config.name == "minilm_tokenizer"
    assert config.parameters["max_length"].string_value == "256"
    assert config.parameters["truncation"].string_value == "true"
    assert [o.name for o in config.output] == ["input_ids", "attention_mask"]


def test_data_type_rejects_unsupported_dtype_when_asked_for_complex() -> None:
    with pytest.raises(ValueError, match="complex64"):
        tc.data_type("complex64")


def test_read_config_raises_repository_error_when_config_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.pbtxt").write_text("name: 'broken'\nmax_batch_size: lots\n")
    with pytest.raises(RepositoryError, match="not a valid Triton model config"):
        ModelRepository(tmp_path).read_config("broken")


def test_labels_file_has_one_label_per_class_line(tmp_path: Path) -> None:
    path = ModelRepository(tmp_path).write_labels("m", ["zero", "one", "two"])
    assert path.read_text().splitlines() == ["zero", "one", "two"]


@pytest.mark.parametrize("target", list(TARGETS.values()), ids=list(TARGETS))
def test_model_config_names_the_targets_native_backend_and_file(target: Target) -> None:
    config = tc.model_config(get_spec("resnet50"), target)
    assert config.backend == target.backend
    assert config.platform == target.platform
    assert (config.default_model_filename or DEFAULT_ARTIFACTS[target.backend]) == target.artifact
    assert config.parameters["maas_target"].string_value == target.name
    assert config.parameters["precision"].string_value == target.precision
    assert config.version_policy.HasField("all")
    for key, value in target.parameters.items():
        assert config.parameters[key].string_value == value


@pytest.mark.parametrize("name", model_names())
def test_image_classifiers_get_the_one_output_view_nvidia_image_client_requires(
    name: str,
) -> None:
    spec = get_spec(name)
    if not tc.has_scores_view(spec):
        assert spec.classification_output is None or len(spec.inputs) > 1, name
        return
    config = from_text(to_text(tc.scores_config(spec)))
    # image_client.py's parse_model: one input of rank 3 in NCHW/NHWC, one FP32 vector output
    (model_input,) = config.input
    (output,) = config.output
    assert config.name == f"{name}_scores" and config.platform == "ensemble"
    assert len(model_input.dims) == 3
    assert model_input.format in (mc.ModelInput.FORMAT_NCHW, mc.ModelInput.FORMAT_NHWC)
    assert output.name == spec.classification_output and output.data_type == mc.TYPE_FP32
    assert len(output.dims) == 1 and output.label_filename == LABELS_FILE
    (step,) = config.ensemble_scheduling.step
    assert step.model_name == name and dict(step.output_map) == {output.name: output.name}
    assert config.max_batch_size == spec.batching.max_batch_size
