"""The served face of a text-generation model: `<model>_generate`, decoupled, streamed.

The step model (`<model>`: the ONNX decode step with its cache) is what export verifies; the
service is a Python-backend model with Triton's decoupled transaction policy that runs that
step in one in-flight batching engine (maas.base.served.generation) and answers prompts with
text, token by token. Its version folders mirror the step's: version N of the service runs
version N of the step, so a new export rolls out as one.
"""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as mc

from maas.base.served.triton_models import GENERATOR
from maas.base.triton.repository import ModelRepository

GENERATE_SUFFIX = "_generate"
SLOTS = 16  # requests decoding together: the batch's cache is at most SLOTS × max_positions
MAX_WAITING = 64  # requests waiting for a slot in the engine; the gateway queues a few more
OPTIONAL_INPUTS = (
    ("max_tokens", mc.TYPE_INT32, [1]),
    ("temperature", mc.TYPE_FP32, [1]),
    ("top_k", mc.TYPE_INT32, [1]),
    ("top_p", mc.TYPE_FP32, [1]),
    ("seed", mc.TYPE_INT64, [1]),
    ("stop", mc.TYPE_STRING, [-1]),
)


def service_name(step: str) -> str:
    """The generation service of a step model."""
    return step + GENERATE_SUFFIX


def service_config(step: str, slots: int = SLOTS, max_waiting: int = MAX_WAITING) -> mc.ModelConfig:
    """Prompt in (`text_input`), text out, decoupled; sampling options as optional inputs."""
    config = mc.ModelConfig(name=service_name(step), backend="python", max_batch_size=0)
    config.model_transaction_policy.decoupled = True
    config.input.append(mc.ModelInput(name="text_input", data_type=mc.TYPE_STRING, dims=[1]))
    for name, datatype, dims in OPTIONAL_INPUTS:
        config.input.append(mc.ModelInput(name=name, data_type=datatype, dims=dims, optional=True))
    config.output.extend(
        [
            mc.ModelOutput(name="text_output", data_type=mc.TYPE_STRING, dims=[1]),
            mc.ModelOutput(name="token_ids", data_type=mc.TYPE_INT64, dims=[-1]),
            mc.ModelOutput(name="finish_reason", data_type=mc.TYPE_STRING, dims=[1]),
        ]
    )
    config.instance_group.add(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)
    for key, value in {
        "step_model": step,
        "slots": str(slots),
        "max_waiting": str(max_waiting),
    }.items():
        config.parameters[key].string_value = value
    return config


def write_generation_service(repository: ModelRepository, step: str) -> str:
    """The service's config and model files, a version folder per version of the step."""
    config = service_config(step)
    repository.write_config(config)
    for version in repository.versions(step):
        GENERATOR.install(repository.version_dir(config.name, version))
    return service_name(step)
