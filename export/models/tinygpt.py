"""tinygpt: a small GPT-2 trained here, deterministically, on Python's own help texts.

The corpus is `pydoc_data.topics` (the texts behind `help("with")`), which ships with every
Python. A byte-level BPE tokenizer and the model are both trained on it at export time, seeded,
so two exports give the same weights. It writes English in the docs' style, not good prose:
it is a real decoder with a key/value cache for serving work, not a language model to rely on.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import tokenizers
import torch
import transformers
from rich.progress import Progress
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from maas.base.errors import ExportError

from ..generation import DecoderStep, split_step_inputs, step_tensors
from ..registry import register
from ..spec import Batching, BuiltModel, KVCache, ModelSpec, Tolerance

log = logging.getLogger("maas.export")
END_OF_TEXT = "<|endoftext|>"
HF_FOLDER = "hf"
GENERATION_FILE = "generation.json"
TOKENIZER_FILE = "tokenizer.json"
# Verification prompts: the first two differ in length, so the cached check pads one of them.
PROMPTS = (
    "The with statement",
    "Exceptions are raised when an error is detected during execution",
    "A list comprehension",
    "The for statement",
    "Class definitions",
    "The import statement",
    "Default argument values",
    "A generator function",
)
TRACE_PROMPTS = ("The with statement is used to wrap the execution of a block", "A list")
TRACE_NEW_TOKENS = 3  # a traced step must have seq and past above 1 (torch.export fixes 0 and 1)


@dataclass(frozen=True)
class Recipe:
    """Tokenizer, architecture and training: everything the weights depend on."""

    vocab_size: int = 2048
    layers: int = 4
    width: int = 128
    heads: int = 4
    positions: int = 256
    steps: int = 600
    batch: int = 32
    block: int = 64  # training window; the model serves up to `positions` tokens
    learning_rate: float = 5e-3
    seed: int = 0
    threads: int = 2  # float sums depend on the thread count: fixed, for identical weights

    @property
    def cache(self) -> KVCache:
        """The step graph's key/value cache."""
        return KVCache(self.layers, self.heads, self.width // self.heads)

    def describe(self) -> str:
        """One line for the manifest."""
        return (
            f"AdamW lr={self.learning_rate} one-cycle, {self.steps} steps of "
            f"{self.batch}×{self.block} tokens, seed {self.seed}, {self.threads} threads"
        )


RECIPE = Recipe()


def corpus() -> list[str]:
    """Python's help topics, in a fixed order."""
    return [topics[key] for key in sorted(topics)]


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2's scheme) with one special token, END_OF_TEXT, at id 0."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if backend.get_vocab_size() != vocab_size:
        raise ExportError(f"the corpus gives {backend.get_vocab_size()} tokens, not {vocab_size}")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        padding_side="left",
    )


def token_stream(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> torch.Tensor:
    """Every text's ids, each followed by END_OF_TEXT, as one long tensor."""
    eos = tokenizer.eos_token_id
    ids = [token for text in texts for token in (*tokenizer.encode(text), eos)]
    return torch.tensor(ids, dtype=torch.long)


def gpt2_config(recipe: Recipe, tokenizer: PreTrainedTokenizerFast) -> GPT2Config:
    """GPT-2 sized by the recipe, without dropout (short training on one small corpus)."""
    return GPT2Config(
        vocab_size=recipe.vocab_size,
        n_positions=recipe.positions,
        n_embd=recipe.width,
        n_layer=recipe.layers,
        n_head=recipe.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers warnings (unpadded training windows) or progress bars (saving)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def deterministic(recipe: Recipe) -> Iterator[None]:
    """Fixed seed, thread count and deterministic kernels; restored afterwards."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(recipe.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(recipe.seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic)


def train(
    recipe: Recipe, tokenizer: PreTrainedTokenizerFast, tokens: torch.Tensor
) -> tuple[GPT2LMHeadModel, float]:
    """Train on random windows of the token stream; returns the model and its final loss.

    The final loss is the mean over the last tenth of the steps (one batch is noisy).
    """
    with deterministic(recipe), quiet_transformers():
        model = GPT2LMHeadModel(gpt2_config(recipe, tokenizer))
        if recipe.steps == 0:
            return model.eval(), float("nan")  # seeded random weights: for speed work only
        optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=recipe.learning_rate, total_steps=recipe.steps, pct_start=0.1
        )
        windows = torch.Generator().manual_seed(recipe.seed)
        offsets = torch.arange(recipe.block)
        losses: list[float] = []
        model.train()
        with Progress(transient=True) as progress:
            task = progress.add_task("training tinygpt", total=recipe.steps)
            for _ in range(recipe.steps):
                starts = torch.randint(
                    0, len(tokens) - recipe.block, (recipe.batch, 1), generator=windows
                )
                batch = tokens[starts + offsets]
                loss = model(input_ids=batch, labels=batch).loss
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                losses.append(loss.item())
                progress.advance(task)
    tail = losses[-max(1, recipe.steps // 10) :]
    return model.eval(), float(np.mean(tail))


def generation_settings(recipe: Recipe, tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """What a server needs to drive the step graph: cache shape, limits and special tokens."""
    cache = recipe.cache
    return {
        "layers": cache.layers,
        "heads": cache.heads,
        "head_dim": cache.head_dim,
        "vocab": recipe.vocab_size,
        "max_positions": recipe.positions,
        "eos_token_id": int(tokenizer.eos_token_id),
        "pad_token_id": int(tokenizer.pad_token_id),
        "bos_token_id": int(tokenizer.bos_token_id),
    }


def save_for_version(
    recipe: Recipe, model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast
) -> dict[str, Path]:
    """The Hugging Face folder, generation.json and tokenizer.json, in a scratch folder.

    tokenizer.json is also beside the step graph: a server needs only the `tokenizers` library.
    """
    folder = Path(tempfile.mkdtemp(prefix="maas-tinygpt-"))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with quiet_transformers():
        model.save_pretrained(folder / HF_FOLDER)
        tokenizer.save_pretrained(folder / HF_FOLDER)
    settings = json.dumps(generation_settings(recipe, tokenizer), indent=2, sort_keys=True)
    (folder / GENERATION_FILE).write_text(settings + "\n")
    return {
        HF_FOLDER: folder / HF_FOLDER,
        GENERATION_FILE: folder / GENERATION_FILE,
        TOKENIZER_FILE: folder / HF_FOLDER / TOKENIZER_FILE,
    }


def train_tinygpt(
    recipe: Recipe = RECIPE,
) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast, float]:
    """Tokenizer and model trained on the corpus; also the final training loss."""
    texts = corpus()
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    tokens = token_stream(tokenizer, texts)
    started = time.perf_counter()
    model, loss = train(recipe, tokenizer, tokens)
    log.info(
        "tinygpt: trained %d steps on %d tokens in %.1f s, final loss %.3f",
        recipe.steps,
        len(tokens),
        time.perf_counter() - started,
        loss,
    )
    return model, tokenizer, loss


def build(recipe: Recipe = RECIPE) -> BuiltModel:
    """Train, then wrap the model as its step graph with real prompts for verification."""
    model, tokenizer, loss = train_tinygpt(recipe)
    files = save_for_version(recipe, model, tokenizer)
    model.set_attn_implementation("eager")  # plain MatMul/Softmax in the graph
    step = DecoderStep(model, recipe.cache).eval()
    pad = int(tokenizer.pad_token_id)
    prompts = [tokenizer.encode(prompt) for prompt in PROMPTS]
    traced = [tokenizer.encode(prompt) for prompt in TRACE_PROMPTS]
    return BuiltModel(
        module=step,
        labels=[],
        # One decode step for every prompt: its last token on the cache of the rest.
        eval_inputs=split_step_inputs(step, prompts, pad, new_tokens=1),
        trace_inputs=split_step_inputs(step, traced, pad, new_tokens=TRACE_NEW_TOKENS),
        prompts=prompts[:2],
        source={
            "data": f"pydoc_data.topics: Python's help topics ({len(topics)} texts)",
            "tokenizer": f"byte-level BPE, {recipe.vocab_size} tokens "
            f"(tokenizers {tokenizers.__version__})",
            "architecture": f"transformers.GPT2LMHeadModel ({transformers.__version__}): "
            f"{recipe.layers} layers, width {recipe.width}, {recipe.heads} heads, "
            f"{recipe.positions} positions, "
            f"{sum(p.numel() for p in model.parameters())} parameters",
            "recipe": recipe.describe(),
            "final_train_loss": f"{loss:.4f}",
        },
        version_files=files,
    )


def tinygpt_spec(recipe: Recipe = RECIPE, name: str = "tinygpt") -> ModelSpec:
    """The spec of a tinygpt trained by recipe (tests train smaller ones)."""
    inputs, outputs = step_tensors(recipe.cache, recipe.vocab_size)
    return ModelSpec(
        name=name,
        description="Small GPT-2 text generator: one decode step with a key/value cache",
        weights=f"trained here on Python's pydoc topics, {recipe.steps} steps, seed {recipe.seed}",
        task="text-generation",
        build=lambda: build(recipe),
        inputs=inputs,
        outputs=outputs,
        # fp32 against fp32: ONNX Runtime sums in another order than torch. Logits here stay
        # under ~30 in magnitude, where reordered fp32 sums over 4 layers differ by ~1e-5.
        tolerance=Tolerance(atol=1e-4, rtol=1e-3, min_top1_agreement=1.0),
        batching=Batching(max_batch_size=32, preferred_batch_sizes=(8, 16)),
        # No padding_mask: a generic adapter must not pad step calls (their caches would need
        # it too); the decoupled server batches them itself.
        cache=recipe.cache,
        targets=("onnxruntime-fp32",),
    )


SPEC = register(tinygpt_spec())
