"""How a served model runs its artifact: the core of the serving adapter, without Triton.

The Python-backend adapter (maas.serve.triton_models.runtime_adapter) wraps this thinly; the
benchmarks' in-process limit calls it too, so the limit is measured by the very code that serves.
Fixed-size requests are joined into one runtime call; variable-length rows (text) lose their
padding and are re-padded per call, grouped by real length (`buckets`) or all together
(`longest`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.runtimes import Runner, RuntimeOptions, load_runner
from maas.base.triton.config import ModelConfig
from maas.base.triton.parameters import AdapterParameters
from maas.base.triton.repository import ModelRepository

from .batching import Arrays, plan_calls, positions


@dataclass
class TokenCounts:
    """What one formed batch of variable-length rows cost: real tokens, computed, calls."""

    real: int = 0
    computed: int = 0
    calls: int = 0


@dataclass(frozen=True)
class Placement:
    """Where a Triton model instance runs its artifact: its device and CUDA graph batches."""

    device: str = ""  # "": the runtime's default; "cuda:N" for an instance of kind GPU
    graph_batches: tuple[int, ...] = ()

    @classmethod
    def on_gpu(cls, device_id: int, preferred: Iterable[int]) -> Placement:
        """A GPU, with graphs for batch 1 and the dynamic batcher's preferred sizes."""
        return cls(f"cuda:{device_id}", tuple(sorted({1, *(int(size) for size in preferred)})))

    @classmethod
    def of_instance(cls, args: dict[str, str], config: dict[str, Any]) -> Placement:
        """From the Python backend's initialize() arguments and the model's JSON config.

        A KIND_GPU instance gets its own GPU (Triton names it in model_instance_device_id);
        a CPU instance the runtime's default device.
        """
        if args.get("model_instance_kind") != "GPU":
            return cls()
        preferred = config.get("dynamic_batching", {}).get("preferred_batch_size", [])
        return cls.on_gpu(int(args.get("model_instance_device_id", 0)), preferred)

    @classmethod
    def of_config(cls, config: ModelConfig) -> Placement:
        """Where `maas serve` would run a model's first instance: GPU 0 for KIND_GPU groups."""
        gpu = any(g.kind == g.KIND_GPU for g in config.instance_group)
        preferred = config.dynamic_batching.preferred_batch_size
        return cls.on_gpu(0, preferred) if gpu else cls()


@dataclass(frozen=True)
class ServedSignature:
    """The tensors a served model exchanges, in config order, and whether it batches."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    batched: bool

    @classmethod
    def of_json(cls, config: dict[str, Any]) -> ServedSignature:
        """From a config in Triton's JSON form."""
        return cls(
            tuple(tensor["name"] for tensor in config["input"]),
            tuple(tensor["name"] for tensor in config["output"]),
            int(config.get("max_batch_size", 0)) > 0,
        )

    @classmethod
    def of_config(cls, config: ModelConfig) -> ServedSignature:
        """From a config message."""
        return cls(
            tuple(tensor.name for tensor in config.input),
            tuple(tensor.name for tensor in config.output),
            config.max_batch_size > 0,
        )


class ServedModelRunner:
    """Runs formed batches of requests on one version's artifact, as the server does."""

    def __init__(
        self, parameters: AdapterParameters, signature: ServedSignature, runner: Runner
    ) -> None:
        self.parameters = parameters
        self.signature = signature
        self.runner = runner

    @classmethod
    def load(
        cls,
        parameters: AdapterParameters,
        version_dir: Path,
        signature: ServedSignature,
        placement: Placement | None = None,
    ) -> ServedModelRunner:
        """Load a version's artifact with the runtime and options the parameters name."""
        placement = placement or Placement()
        options = RuntimeOptions(
            precision=parameters.model.precision,
            threads=parameters.model.threads,
            device=placement.device,
            graph_batches=placement.graph_batches,
        )
        runner = load_runner(parameters.runtime, version_dir / parameters.artifact, options)
        return cls(parameters, signature, runner)

    @classmethod
    def for_repository(
        cls,
        repository: ModelRepository,
        model: str,
        padding_strategy: str | None = None,
        threads: int | None = None,
    ) -> ServedModelRunner:
        """The newest version of a canonical model, run as `maas serve` would run it."""
        config = repository.read_config(model)
        parameters = AdapterParameters.for_model(config)
        if padding_strategy is not None:
            parameters = replace(parameters, padding_strategy=padding_strategy)
        if threads is not None:
            parameters = replace(parameters, model=replace(parameters.model, threads=threads))
        version = max(repository.versions(model))
        folder = repository.version_dir(model, version)
        signature = ServedSignature.of_config(config)
        return cls.load(parameters, folder, signature, Placement.of_config(config))

    @property
    def padding_mask(self) -> str | None:
        """The input whose zeros mark padding, for variable-length models."""
        return self.parameters.model.padding_mask

    def describe(self) -> dict[str, str]:
        """The runner's own description: runtime, version, precision, device."""
        return self.runner.describe()

    def run(self, feeds: list[Arrays], counts: TokenCounts | None = None) -> list[Arrays]:
        """Every request's outputs, in order; counts (if given) adds what the batch cost."""
        if not self.signature.batched:
            return [self.runner.infer(feed) for feed in feeds]
        if self.padding_mask is None:
            return self.run_fixed(feeds)
        return self.run_variable(feeds, self.padding_mask, counts or TokenCounts())

    def run_fixed(self, feeds: list[Arrays]) -> list[Arrays]:
        """Fixed-size rows: one call on the joined requests, split back."""
        bounds = self.bounds(feeds)
        joined = {name: np.concatenate([feed[name] for feed in feeds]) for name in feeds[0]}
        results = self.runner.infer(joined)
        return [
            {name: values[start:stop] for name, values in results.items()}
            for start, stop in itertools.pairwise(bounds)
        ]

    def run_variable(
        self, feeds: list[Arrays], padding_mask: str, counts: TokenCounts
    ) -> list[Arrays]:
        """Rows of all requests, grouped by length, run, and handed back to their requests."""
        bounds = self.bounds(feeds)
        strategy = self.parameters.padding_strategy
        waste = self.parameters.max_padding_waste
        groups, calls, lengths = plan_calls(feeds, padding_mask, strategy, waste)
        outputs: dict[str, list[Any]] = {
            name: [None] * bounds[-1] for name in self.signature.outputs
        }
        for group, joined in zip(groups, calls, strict=True):
            counts.computed += positions(joined[self.signature.inputs[0]])
            for name, values in self.runner.infer(joined).items():
                for index, value in zip(group, values, strict=True):
                    outputs[name][index] = value
        counts.real += sum(lengths)
        counts.calls += len(groups)
        return [
            {name: np.stack(values[start:stop]) for name, values in outputs.items()}
            for start, stop in itertools.pairwise(bounds)
        ]

    def bounds(self, feeds: list[Arrays]) -> list[int]:
        """Where each request's rows start and end in the joined batch."""
        sizes = [len(feed[self.signature.inputs[0]]) for feed in feeds]
        return list(itertools.accumulate(sizes, initial=0))
