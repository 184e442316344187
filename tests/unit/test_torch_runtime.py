"""The torch-cuda-bf16 target's CPU-testable parts: export, loading, gating, placement, configs.

What needs a GPU (CUDA graphs, KIND_GPU instances in a running Triton) is run by
benchmarks/gpu_check.sh on a lent device machine, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from maas.base.errors import RuntimeUnavailableError
from maas.base.runtimes import RuntimeOptions, load_runner
from maas.base.runtimes.torch_runner import GraphPolicy, ProgramSignature
from maas.base.served.adapter import Placement
from maas.base.triton.parameters import AdapterParameters
from maas.export import ModelRepository, get_spec
from maas.export import triton_config as tc
from maas.export.selection import gate
from maas.export.spec import BuiltModel
from maas.export.targets import TARGETS, BuildContext, get_target
from maas.export.torch_program import PROGRAM_FILE
from maas.export.verify import run_batched, torch_runner
from maas.serve.serving_repo import build_serving_repository

TARGET = "torch-cuda-bf16"


def has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuiltModel, Path]:
    """The registry's digits CNN, trained, and its bf16 program built by the target itself."""
    spec = get_spec("digits_cnn")
    built = spec.build()
    folder = tmp_path_factory.mktemp("program")
    context = BuildContext(spec, Path("unused.onnx"), folder, built.eval_inputs, built.module)
    get_target(TARGET).build(context)
    return built, folder / PROGRAM_FILE


def test_the_bf16_program_passes_the_digits_accuracy_gate_on_cpu(
    digits: tuple[BuiltModel, Path],
) -> None:
    built, program = digits
    spec = get_spec("digits_cnn")
    runner = load_runner("torch", program, RuntimeOptions("bf16", device="cpu"))
    expected = run_batched(torch_runner(spec, built.module), built.eval_inputs)
    actual = run_batched(runner.infer, built.eval_inputs)
    assert {name: values.dtype for name, values in actual.items()} == {
        "logits": np.float32,
        "probabilities": np.float32,
    }
    failures, measures = gate(spec, get_target(TARGET), built, expected, actual)
    assert failures == []
    assert measures["top1_agreement"] >= 0.99 and measures["accuracy_drop"] <= 0.005
    # bf16 really is what ran: the outputs are not fp32's to the last bit.
    assert not np.array_equal(expected["logits"], actual["logits"])
    assert runner.describe() | {"version": ""} == {
        "runtime": "torch",
        "version": "",
        "precision": "bf16",
        "device": "cpu",
        "cuda_graph_batches": "none",
        "cuda_graphs_refused": "none",
    }


def test_the_program_records_its_tensors_and_refuses_another_precision(
    digits: tuple[BuiltModel, Path],
) -> None:
    _, program = digits
    assert ProgramSignature.read(program) == ProgramSignature(
        ("pixels",), ("logits", "probabilities"), "bf16"
    )
    with pytest.raises(RuntimeUnavailableError, match="computes in bf16, the config asks for fp16"):
        load_runner("torch", program, RuntimeOptions("fp16", device="cpu"))


@pytest.mark.skipif(has_cuda(), reason="a CUDA device is present")
def test_without_cuda_the_runner_and_the_target_say_why(digits: tuple[BuiltModel, Path]) -> None:
    _, program = digits
    with pytest.raises(RuntimeUnavailableError, match="torch sees no CUDA device"):
        load_runner("torch", program, RuntimeOptions("bf16"))
    assert get_target(TARGET).unavailable() == f"no CUDA device for {TARGET}"


def test_graphs_are_kept_for_the_configured_batches_up_to_the_limit() -> None:
    policy = GraphPolicy(frozenset({1, 8}), limit=2)
    assert policy.key(((3, 1, 8, 8),)) is None  # batch 3: eager
    first = ((8, 12), (8, 12))
    assert policy.key(first) == first
    policy.remember(first, "graph")
    policy.remember(((1, 5), (1, 5)), "graph")
    assert policy.key(((8, 30), (8, 30))) is None  # a third shape: over the limit, eager
    assert policy.key(first) == first  # captured shapes keep their graph
    policy.refuse(first, "operation not permitted when stream is capturing")
    assert policy.key(first) is None  # refused: eager from now on


def test_a_gpu_instance_gets_its_device_and_graphs_for_the_preferred_sizes() -> None:
    config = {"dynamic_batching": {"preferred_batch_size": [16, 8]}}
    gpu = {"model_instance_kind": "GPU", "model_instance_device_id": "1"}
    assert Placement.of_instance(gpu, config) == Placement("cuda:1", (1, 8, 16))
    assert Placement.of_instance({"model_instance_kind": "CPU"}, config) == Placement()


def test_an_in_process_runner_is_placed_where_serve_places_the_model() -> None:
    spec = get_spec("resnet50")
    gpu = Placement.of_config(tc.model_config(spec, get_target(TARGET)))
    assert gpu == Placement("cuda:0", tuple(sorted({1, *spec.batching.preferred_batch_sizes})))
    assert Placement.of_config(tc.model_config(spec, get_target("onnxruntime-fp32"))) == Placement()


@pytest.mark.parametrize("target", list(TARGETS))
def test_gpu_targets_get_gpu_instances_and_the_others_cpu_instances(target: str) -> None:
    config = tc.model_config(get_spec("resnet50"), get_target(target))
    (group,) = config.instance_group
    gpu = target.startswith(("tensorrt", "torch"))
    assert group.kind == (mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU)


def test_a_torch_model_is_served_by_the_adapter_on_gpu_instances(tmp_path: Path) -> None:
    spec = get_spec("resnet50")
    canonical = ModelRepository(tmp_path / "canonical")
    canonical.write_config(tc.model_config(spec, get_target(TARGET)))
    canonical.version_dir(spec.name, 1).mkdir(parents=True)
    (canonical.version_dir(spec.name, 1) / PROGRAM_FILE).write_bytes(b"program")
    (canonical.version_dir(spec.name, 1) / f"{PROGRAM_FILE}.json").write_text("{}")
    (served,) = build_serving_repository(canonical, tmp_path / "served")
    assert (served.backend, served.served_by) == ("torch", "python adapter")
    adapted = ModelRepository(tmp_path / "served").read_config(spec.name)
    assert adapted.backend == "python"
    assert adapted.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    parameters = {key: value.string_value for key, value in adapted.parameters.items()}
    read = AdapterParameters.read(parameters)
    assert (read.runtime, read.artifact, read.model.precision) == ("torch", PROGRAM_FILE, "bf16")
    version = tmp_path / "served" / spec.name / "1"
    assert {p.name for p in version.iterdir()} == {"model.py", PROGRAM_FILE, f"{PROGRAM_FILE}.json"}
