"""Decoders: one step graph with a key/value cache, its inputs, and the cached-generation check.

The step graph takes input_ids, attention_mask and position_ids for the new tokens plus the
cache of the tokens before them (zero-length for a prefill), and returns the logits of the new
tokens and the cache grown by them. Rows may be left-padded: attention_mask zeros mark padding,
and position_ids are given per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from maas.base.errors import VerificationError
from maas.base.runtimes import load_runner

from .spec import Inputs, KVCache, ModelSpec, TensorSpec
from .verify import OutputComparison, Runner, VerificationReport, compare_output, torch_runner

STEP_INPUTS = ("input_ids", "attention_mask", "position_ids")
VERIFY_DECODE_STEPS = 3
PAD_FILLER = 0  # any id: padding is masked out; the tokenizer's pad id is the server's choice


class DecoderStep(nn.Module):
    """A causal language model as one step: new tokens + flat past tensors → logits + present."""

    def __init__(self, model: PreTrainedModel, cache: KVCache) -> None:
        super().__init__()
        self.model = model
        self.cache = cache

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Logits [batch, seq, vocab], then present key and value per layer."""
        cache = DynamicCache(config=self.model.config)
        for layer in range(self.cache.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        mask = additive_causal_mask(attention_mask, input_ids.shape[1])
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        present = [
            tensor for layer in out.cache.layers[: self.cache.layers] for tensor in layer_kv(layer)
        ]
        return (out.logits, *present)


def layer_kv(layer: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values a DynamicCache layer holds."""
    return layer.keys, layer.values  # type: ignore[attr-defined]


def additive_causal_mask(attention_mask: torch.Tensor, seq: int) -> torch.Tensor:
    """[batch, 1, seq, past+seq]: 0 where a new token may attend, the float minimum elsewhere.

    The new tokens sit at the end of attention_mask. The float minimum, not -inf, keeps a row
    with nothing to attend to (a padding token's) finite instead of NaN; its output is never used.
    """
    total = attention_mask.shape[1]
    query = torch.arange(seq, device=attention_mask.device).unsqueeze(1) + (total - seq)
    key = torch.arange(total, device=attention_mask.device).unsqueeze(0)
    allowed = (key <= query).unsqueeze(0) & attention_mask.bool().unsqueeze(1)
    blocked = torch.zeros(allowed.shape, dtype=torch.float32, device=attention_mask.device)
    return blocked.masked_fill(~allowed, torch.finfo(torch.float32).min).unsqueeze(1)


def step_tensors(
    cache: KVCache, vocab: int
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The step graph's inputs and outputs, without the batch dimension."""
    kv_past = (cache.heads, -1, cache.head_dim)
    inputs = (
        TensorSpec("input_ids", (-1,), "int64", axes=("seq",)),
        TensorSpec("attention_mask", (-1,), "int64", axes=("past_seq",)),
        TensorSpec("position_ids", (-1,), "int64", axes=("seq",)),
        *(TensorSpec(name, kv_past, axes=("past",)) for name in cache.past_names()),
    )
    outputs = (
        TensorSpec("logits", (-1, vocab), axes=("seq",)),
        *(TensorSpec(name, kv_past, axes=("past_seq",)) for name in cache.present_names()),
    )
    return inputs, outputs


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask [rows, longest], real tokens at the right."""
    longest = max(len(prompt) for prompt in prompts)
    ids = np.full((len(prompts), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), longest), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = prompt
        mask[row, longest - len(prompt) :] = 1
    return ids, mask


def position_ids(mask: np.ndarray) -> np.ndarray:
    """Each real token's position in its row; padding gets 0 (never attended to)."""
    positions: np.ndarray = np.maximum(mask.cumsum(axis=1) - 1, 0).astype(np.int64)
    return positions


def empty_past(cache: KVCache, rows: int) -> Inputs:
    """A zero-length cache: what a prefill starts from."""
    shape = (rows, cache.heads, 0, cache.head_dim)
    return {name: np.zeros(shape, dtype=np.float32) for name in cache.past_names()}


def prefill_inputs(cache: KVCache, ids: np.ndarray, mask: np.ndarray) -> Inputs:
    """A whole left-padded batch as one step on an empty cache."""
    step = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids(mask)}
    return {**step, **empty_past(cache, len(ids))}


def next_inputs(
    cache: KVCache, inputs: Inputs, outputs: dict[str, np.ndarray], tokens: np.ndarray
) -> Inputs:
    """One more token per row after a step: the mask grows by one, the cache is the present."""
    mask = np.concatenate([inputs["attention_mask"], np.ones((len(tokens), 1), np.int64)], axis=1)
    last = inputs["position_ids"][:, -1:] + 1
    past = dict(zip(cache.past_names(), (outputs[n] for n in cache.present_names()), strict=True))
    return {"input_ids": tokens[:, None].astype(np.int64), "attention_mask": mask,
            "position_ids": last, **past}  # fmt: skip


def split_step_inputs(
    step: DecoderStep, prompts: list[list[int]], pad_id: int, new_tokens: int
) -> Inputs:
    """The prompts' last new_tokens tokens as one step on the cache of the rest (torch prefill)."""
    ids, mask = left_pad(prompts, pad_id)
    cut = ids.shape[1] - new_tokens
    head = prefill_inputs(step.cache, ids[:, :cut].copy(), mask[:, :cut].copy())
    past = run_torch(step, head)
    inputs = {"input_ids": ids[:, cut:].copy(), "attention_mask": mask,
              "position_ids": position_ids(mask)[:, cut:].copy()}  # fmt: skip
    presents = (past[name] for name in step.cache.present_names())
    inputs.update(zip(step.cache.past_names(), presents, strict=True))
    return inputs


def run_torch(step: DecoderStep, inputs: Inputs) -> dict[str, np.ndarray]:
    """One step of the torch module, outputs named as the step graph names them."""
    names = ["logits", *step.cache.present_names()]
    with torch.no_grad():
        result = step(*(torch.from_numpy(inputs[n]) for n in step_input_names(step.cache)))
    return {name: tensor.numpy() for name, tensor in zip(names, result, strict=True)}


def step_input_names(cache: KVCache) -> list[str]:
    """Every input of the step graph, in order."""
    return [*STEP_INPUTS, *cache.past_names()]


def verify_cached_generation(
    spec: ModelSpec,
    module: nn.Module,
    onnx: Path,
    prompts: list[list[int]],
    steps: int = VERIFY_DECODE_STEPS,
) -> VerificationReport:
    """A left-padded prefill, then `steps` decode steps, each side fed its own cache.

    Every step's logits and present tensors must meet the spec's tolerance (the report keeps
    each output's worst step, as "cached <output>"), and both must pick the same next token for
    every row (both are fed torch's pick, so one miss does not derail the rest). Raises
    VerificationError naming every failure.
    """
    if spec.cache is None or len(prompts) < 2:
        raise ValueError(f"{spec.name}: the cached-generation check needs a cache and 2 prompts")
    reference, candidate = torch_runner(spec, module), onnx_runner(onnx)
    ids, mask = left_pad(prompts, PAD_FILLER)
    feeds = [prefill_inputs(spec.cache, ids, mask)] * 2
    comparisons: dict[str, list[OutputComparison]] = {o.name: [] for o in spec.outputs}
    agreed = 0
    for _ in range(steps + 1):
        expected, actual = reference(feeds[0]), candidate(feeds[1])
        for name, compared in comparisons.items():
            compared.append(compare_output(name, expected[name], actual[name], spec))
        tokens = expected["logits"][:, -1].argmax(axis=-1)
        agreed += int((actual["logits"][:, -1].argmax(axis=-1) == tokens).sum())
        feeds = [
            next_inputs(spec.cache, feed, out, tokens)
            for feed, out in ((feeds[0], expected), (feeds[1], actual))
        ]
    worst = [worst_of(f"cached {name}", compared) for name, compared in comparisons.items()]
    return cached_report(spec, worst, agreed / (len(prompts) * (steps + 1)), len(prompts))


def worst_of(name: str, comparisons: list[OutputComparison]) -> OutputComparison:
    """One output over every step: the largest errors, within tolerance only if every step was."""
    return OutputComparison(
        name,
        max(c.max_abs_error for c in comparisons),
        max(c.max_rel_error for c in comparisons),
        all(c.within_tolerance for c in comparisons),
    )


def onnx_runner(onnx: Path) -> Runner:
    """The step graph on ONNX Runtime's CPU provider."""
    return load_runner("onnxruntime", onnx).infer


def cached_report(
    spec: ModelSpec, comparisons: list[OutputComparison], agreement: float, rows: int
) -> VerificationReport:
    """The report of a cached-generation check; raises VerificationError on any failure."""
    failures = [
        f"{c.name}: max abs error {c.max_abs_error:.3g} exceeds "
        f"atol={spec.tolerance.atol:g} + rtol={spec.tolerance.rtol:g}·|expected|"
        for c in comparisons
        if not c.within_tolerance
    ]
    if agreement < spec.tolerance.min_top1_agreement:
        required = spec.tolerance.min_top1_agreement
        failures.append(f"next-token agreement {agreement:.4f} < required {required:.4f}")
    if failures:
        raise VerificationError(spec.name, failures)
    return VerificationReport(tuple(comparisons), agreement, None, rows)
