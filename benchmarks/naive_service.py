"""The service people write instead of Triton: FastAPI + PyTorch eager, fp32, one image a call.

`uvicorn maas.benchmarks.naive_service:app` with MAAS_NAIVE_MODEL naming a registered image
model (e.g. resnet50). POST /predict takes the bytes of a JPEG or PNG and answers the top-5
classes; GET /health answers once the model is loaded. No batching, no compilation, no
reduced precision: the baseline the benchmarks compare Triton with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request

from maas.base.served.image import InvalidImageError
from maas.base.triton.repository import ModelRepository
from maas.export.registry import get_spec

from .workloads import image_preprocessor

TOP_K = 5

app = FastAPI(title="naive model service (benchmark baseline)")
_state: dict[str, Any] = {}


@app.on_event("startup")
def load_model() -> None:
    """Build the registered model in eager mode and its preprocessing, once."""
    name = os.environ.get("MAAS_NAIVE_MODEL", "resnet50")
    repository = ModelRepository(Path(os.environ.get("MAAS_REPOSITORY", "model_repository")))
    _state["module"] = get_spec(name).build().module.eval()
    _state["preprocess"] = image_preprocessor(repository, name).preprocess


@app.get("/health")
def health() -> dict[str, str]:
    """Ready once the model is loaded."""
    return {"status": "ok" if _state else "loading"}


@app.post("/predict")
async def predict(request: Request) -> dict[str, list[dict[str, float]]]:
    """Decode, preprocess and classify one image with a forward pass of its own."""
    body = await request.body()
    try:
        pixels = _state["preprocess"](body, 0)
    except InvalidImageError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    with torch.inference_mode():
        outputs = _state["module"](torch.from_numpy(pixels[None]))
    scores = outputs[-1][0] if isinstance(outputs, tuple | list) else outputs[0]
    top = torch.topk(scores, TOP_K)
    return {
        "top": [
            {"class": int(index), "score": float(score)}
            for score, index in zip(top.values, top.indices, strict=True)
        ]
    }
