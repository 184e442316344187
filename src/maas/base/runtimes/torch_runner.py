"""torch: a `torch.export` program on an NVIDIA GPU, in the precision it was exported in.

The program's weights are already bf16 (or fp16): export casts the registry's module before
tracing it, so the runner only moves it to the device. Batches whose size is one of
`RuntimeOptions.graph_batches` (batch 1 and the dynamic batcher's preferred sizes) are run
through a CUDA graph captured on first use, one per input shape, up to `MAX_GRAPHS`; any
other shape runs eagerly. On device "cpu" the same program runs eagerly, without graphs:
that is how its export, loading and gating are tested on machines without a GPU.

UNVERIFIED on a GPU: no CUDA device was available where maas was developed and tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.base.errors import RuntimeUnavailableError

from . import Arrays, RuntimeOptions

SIDECAR_SUFFIX = ".json"  # model.pt2.json: tensor names and the dtype the program computes in
MAX_GRAPHS = 32  # each graph keeps its own static buffers on the device
WARMUP_CALLS = 3  # eager calls on a side stream before capture, as torch's CUDA graph docs ask
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class ProgramSignature:
    """What the sidecar records: forward's inputs in order, the outputs, the float dtype."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    precision: str

    def write(self, program: Path) -> None:
        """Save beside the program file."""
        sidecar = program.with_name(program.name + SIDECAR_SUFFIX)
        sidecar.write_text(json.dumps(vars(self) | {"torch": torch_version()}, indent=2) + "\n")

    @classmethod
    def read(cls, program: Path) -> ProgramSignature:
        """Load from beside the program file."""
        sidecar = program.with_name(program.name + SIDECAR_SUFFIX)
        if not sidecar.is_file():
            raise RuntimeUnavailableError(f"{sidecar} is missing; re-export the model")
        recorded = json.loads(sidecar.read_text())
        return cls(tuple(recorded["inputs"]), tuple(recorded["outputs"]), recorded["precision"])


def torch_version() -> str:
    """The installed torch's version (programs load only in the version that saved them)."""
    import torch

    return str(torch.__version__)


Shapes = tuple[tuple[int, ...], ...]  # one batch's input shapes: the key of its CUDA graph


@dataclass
class GraphPolicy:
    """Which batches run through CUDA graphs, and the graphs captured so far.

    Sizes in `batches`, at most `limit` shapes; a shape torch refused runs eagerly.
    """

    batches: frozenset[int]
    limit: int = MAX_GRAPHS
    captured: dict[Shapes, Any] = field(default_factory=dict)  # shapes → CapturedGraph
    refused: dict[Shapes, str] = field(default_factory=dict)

    def key(self, shapes: Shapes) -> Shapes | None:
        """The graph key for a batch of these input shapes, or None to run it eagerly."""
        if not shapes or shapes[0][0] not in self.batches or shapes in self.refused:
            return None
        if shapes in self.captured or len(self.captured) < self.limit:
            return shapes
        return None

    def remember(self, shapes: Shapes, graph: Any) -> None:
        """A graph now exists for these shapes."""
        self.captured[shapes] = graph

    def refuse(self, shapes: Shapes, why: str) -> None:
        """These shapes could not be captured (an op that syncs, say): run them eagerly."""
        self.refused[shapes] = why


@dataclass
class CapturedGraph:
    """A CUDA graph and the static tensors it reads from and writes to."""

    graph: Any
    inputs: list[Any]
    outputs: tuple[Any, ...]


def require_device(torch: Any, device: str) -> None:
    """Refuse a CUDA device torch cannot see, naming what is missing."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeUnavailableError(
            "the torch runtime serves on an NVIDIA GPU and torch sees no CUDA device "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})"
        )


class TorchRunner:
    """A loaded program on one device, with CUDA graphs for the configured batch sizes."""

    def __init__(self, program: Path, options: RuntimeOptions) -> None:
        import torch

        self.torch = torch
        self.device = options.device or "cuda"
        require_device(torch, self.device)
        self.signature = ProgramSignature.read(program)
        if self.signature.precision != options.precision:
            raise RuntimeUnavailableError(
                f"{program} computes in {self.signature.precision}, "
                f"the config asks for {options.precision}"
            )
        self.dtype = getattr(torch, DTYPES[self.signature.precision])
        self.module = torch.export.load(str(program)).module().to(self.device)
        on_gpu = self.device.startswith("cuda")
        self.policy = GraphPolicy(frozenset(options.graph_batches if on_gpu else ()))

    def tensors(self, inputs: Arrays) -> list[Any]:
        """Inputs in forward's order on the device; floats in the program's dtype."""
        result = []
        for name in self.signature.inputs:
            tensor = self.torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device)
            result.append(tensor.to(self.dtype) if tensor.is_floating_point() else tensor)
        return result

    def infer(self, inputs: Arrays) -> Arrays:
        """One batch: through its CUDA graph where the policy allows, else eagerly."""
        tensors = self.tensors(inputs)
        key = self.policy.key(tuple(tuple(t.shape) for t in tensors))
        with self.torch.inference_mode():
            outputs = self.call(tensors) if key is None else self.replay(key, tensors)
            return {
                name: value.float().cpu().numpy()
                for name, value in zip(self.signature.outputs, outputs, strict=True)
            }

    def call(self, tensors: list[Any]) -> tuple[Any, ...]:
        """Run the module eagerly."""
        result = self.module(*tensors)
        return tuple(result) if isinstance(result, (tuple, list)) else (result,)

    def replay(self, key: Shapes, tensors: list[Any]) -> tuple[Any, ...]:
        """Copy into the graph's static inputs and replay it, capturing it first if new."""
        captured: CapturedGraph | None = self.policy.captured.get(key)
        if captured is None:
            try:
                captured = self.capture(tensors)
            except RuntimeError as error:  # torch refuses to capture some ops; eager still works
                self.policy.refuse(key, str(error).splitlines()[0])
                return self.call(tensors)
            self.policy.remember(key, captured)
        for static, tensor in zip(captured.inputs, tensors, strict=True):
            static.copy_(tensor)
        captured.graph.replay()
        return captured.outputs

    def capture(self, tensors: list[Any]) -> CapturedGraph:
        """Warm up on a side stream, then record one call into a CUDA graph."""
        torch = self.torch
        static = [tensor.clone() for tensor in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.call(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self.call(static)
        return CapturedGraph(graph, static, outputs)

    def describe(self) -> dict[str, str]:
        """Runtime, version, precision, device and how many graphs are captured."""
        device = self.device
        if device.startswith("cuda"):
            device = f"{device} ({self.torch.cuda.get_device_name(self.device)})"
        return {
            "runtime": "torch",
            "version": str(self.torch.__version__),
            "precision": self.signature.precision,
            "device": device,
            "cuda_graph_batches": ",".join(map(str, sorted(self.policy.batches))) or "none",
            "cuda_graphs_refused": "; ".join(sorted(set(self.policy.refused.values()))) or "none",
        }


def load(artifact: Path, options: RuntimeOptions) -> TorchRunner:
    """Load a program saved by `maas export` for a torch target."""
    return TorchRunner(artifact, options)
