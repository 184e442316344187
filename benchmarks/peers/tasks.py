"""The workloads of the peers comparison: what maas serves each as, and the artifact behind it.

Kept free of any runtime or peer package: the Locust users import it.
"""

from __future__ import annotations

from dataclasses import dataclass

PEERS = ("bentoml", "ray", "torchserve")
CALLERS = ("naive", *PEERS)  # the naive FastAPI service takes raw images the way Ray's does


@dataclass(frozen=True)
class PeerTask:
    """One workload of the comparison: what maas serves it as, and the artifact behind it."""

    name: str
    kind: str  # image | image-tensor | text: the Workload kind of maas_model
    maas_model: str  # what maas's clients call (the ensemble for raw inputs)
    artifact: str  # the canonical model whose artifact every system runs
    max_batch: int  # the largest batch maas's config allows; the peers get the same

    @property
    def route(self) -> str:
        """The path a peer serves this task on."""
        return self.name.replace("-", "_")


TASKS = {
    task.name: task
    for task in (
        PeerTask("resnet50-jpeg", "image", "resnet50_image", "resnet50", 16),
        PeerTask("resnet50-tensor", "image-tensor", "resnet50", "resnet50", 16),
        PeerTask("minilm-text", "text", "minilm_text", "minilm", 64),
    )
}


def task_of_model(model: str) -> PeerTask:
    """The task whose maas model is `model`; a ValueError naming the choices otherwise."""
    for task in TASKS.values():
        if task.maas_model == model:
            return task
    known = ", ".join(task.maas_model for task in TASKS.values())
    raise ValueError(f"no peers task serves {model!r}; expected one of {known}")


def task_for(caller: str, model: str) -> PeerTask:
    """What a caller sends for `model`: a peers task, or any image ensemble to the naive service."""
    if caller == "naive":
        return PeerTask(model, "image", model, model, 1)
    return task_of_model(model)
