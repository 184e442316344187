"""Text generation with in-flight batching over an ONNX decode step with a KV cache.

The decode step (`model.onnx`, written by `maas export` for a text-generation model) takes
`input_ids`, `attention_mask`, `position_ids` and every layer's past keys and values, and
returns `logits` and the present keys and values (past + new). One engine thread runs the
steps. Every step, waiting requests join the running batch (their prompt is run alone, its
cache then merged), the batch advances one token, and requests that finished, hit a stop, or
whose caller went away leave it. Rows are left-padded: a row's cache is right-aligned with
the others and its padding masked, so a step never copies the cache unless the batch's
membership changed.

Memory is bounded: at most `slots` requests decode at once (each cache at most
`max_positions` tokens), at most `max_waiting` wait for a slot; beyond that a request is
refused at once with `OverloadedError`.

Standalone (numpy, onnxruntime, tokenizers) so that export can copy it beside the Triton
model as `maas_generation.py`.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GENERATION_FILE = "generation.json"
STEP_FILE = "model.onnx"
TOKENIZER_FILES = ("tokenizer.json", "hf/tokenizer.json")  # beside the step, or its HF folder


INVALID_PREFIX = "invalid generation request: "  # how clients tell it from other stream errors


class GenerationError(ValueError):
    """A request's parameters or prompt cannot be generated from; the message says why."""


class OverloadedError(RuntimeError):
    """Every slot is decoding and the waiting line is full; retry later."""


@dataclass(frozen=True)
class ModelShape:
    """What the decode step's tensors look like (generation.json, written at export)."""

    layers: int
    heads: int
    head_dim: int
    vocab: int
    max_positions: int
    eos_token_id: int

    @classmethod
    def load(cls, path: Path) -> ModelShape:
        """Read generation.json."""
        raw = json.loads(path.read_text())
        return cls(**{name: int(raw[name]) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded: greedy unless a temperature above 0 is given."""

    max_tokens: int = 32
    temperature: float = 0.0
    top_k: int = 0  # 0: every token
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= 4096:
            raise GenerationError(f"max_tokens must be 1-4096, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 10.0:
            raise GenerationError(f"temperature must be 0-10 (0: greedy), got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be 0 (off) or more, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not isinstance(text, str) or not text for text in self.stop) or len(self.stop) > 8:
            raise GenerationError("stop must be up to 8 non-empty strings")

    @classmethod
    def parse(cls, values: dict[str, Any]) -> SamplingParams:
        """From a request's inputs and parameters; unknown names are ignored, bad values named."""
        known: dict[str, Any] = {}
        casts: dict[str, Callable[[Any], Any]] = {
            "max_tokens": int,
            "temperature": float,
            "top_k": int,
            "top_p": float,
            "seed": int,
        }
        for name, cast in casts.items():
            if name in values and values[name] is not None:
                value = values[name]
                if isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
                    raise GenerationError(f"{name} must be a number, got {value!r}")
                try:
                    known[name] = cast(value)
                except (TypeError, ValueError):
                    raise GenerationError(f"{name} must be a number, got {value!r}") from None
        stop = values.get("stop")
        if stop is not None:
            known["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        return cls(**known)


class Sampler:
    """The next token from one row of logits: greedy, or seeded sampling."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def pick(self, logits: np.ndarray) -> int:
        """The chosen token id."""
        params = self.params
        if params.temperature == 0.0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / params.temperature
        if params.top_k:
            cut = np.partition(scaled, -params.top_k)[-params.top_k]
            scaled = np.where(scaled < cut, -np.inf, scaled)
        probabilities = np.exp(scaled - scaled.max())
        probabilities /= probabilities.sum()
        if params.top_p < 1.0:
            order = np.argsort(-probabilities, kind="stable")
            kept = np.cumsum(probabilities[order]) - probabilities[order] < params.top_p
            mask = np.zeros_like(probabilities, dtype=bool)
            mask[order[kept]] = True
            probabilities = np.where(mask, probabilities, 0.0)
            probabilities /= probabilities.sum()
        return int(self.rng.choice(len(probabilities), p=probabilities))


class TextStream:
    """Decoded text as tokens arrive: only what can no longer change or start a stop string."""

    def __init__(self, decode: Callable[[list[int]], str], stop: tuple[str, ...]) -> None:
        self.decode, self.stop = decode, stop
        self.ids: list[int] = []
        self.sent = 0  # characters of the text already handed out
        self.stopped = False

    def push(self, token: int) -> str:
        """Add a token; the text that became final."""
        self.ids.append(token)
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""  # a character cut between tokens: wait for the rest of its bytes
        for stop in self.stop:
            at = text.find(stop, max(0, self.sent - len(stop)))
            if at >= 0:
                self.stopped = True
                return self._take(text[:at])
        hold = max((overlap(text, stop) for stop in self.stop), default=0)
        return self._take(text[: len(text) - hold])

    def flush(self) -> str:
        """At the end: whatever was held back."""
        return "" if self.stopped else self._take(self.decode(self.ids))

    def _take(self, text: str) -> str:
        new = text[self.sent :]
        self.sent = max(self.sent, len(text))
        return new


def overlap(text: str, stop: str) -> int:
    """How many of text's last characters are a beginning of stop."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0


@dataclass(frozen=True)
class Chunk:
    """What a request is sent: new text, the tokens behind it, and on the last one why it ended."""

    text: str
    token_ids: list[int]
    final: bool = False
    reason: str = ""  # eos, stop, length; cancelled; "error: …" when the server stops


@dataclass
class Sequence:
    """One request being generated."""

    prompt: list[int]
    params: SamplingParams
    emit: Callable[[Chunk], None]  # called on the engine thread
    cancelled: Callable[[], bool]
    stream: TextStream
    sampler: Sampler = field(init=False)
    generated: int = 0
    last_token: int = 0
    length: int = 0  # tokens in its cache
    pending: list[int] = field(default_factory=list)  # tokens whose text is not sent yet
    arrived: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.sampler = Sampler(self.params)


StepRunner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class DecodeBatch:
    """The rows decoding together and their caches, left-padded to one length."""

    def __init__(self, shape: ModelShape) -> None:
        self.shape = shape
        self.rows: list[Sequence] = []
        self.mask = np.zeros((0, 0), dtype=np.int64)  # [rows, cache length]
        self.cache: list[np.ndarray] = []  # per layer, key then value: [rows, heads, len, dim]

    @property
    def width(self) -> int:
        """Cache length the rows are padded to."""
        return int(self.mask.shape[1])

    def join(self, sequence: Sequence, cache: list[np.ndarray]) -> None:
        """Add a row whose prompt has run alone (cache: [1, heads, its length, dim] each)."""
        length = cache[0].shape[2]
        width = max(self.width, length)
        self.mask = np.concatenate(
            [pad_left(self.mask, width), pad_left(np.ones((1, length), np.int64), width)]
        )
        if self.rows:
            self.cache = [
                np.concatenate([pad_left(old, width, axis=2), pad_left(new, width, axis=2)])
                for old, new in zip(self.cache, cache, strict=True)
            ]
        else:
            self.cache = list(cache)
        self.rows.append(sequence)

    def leave(self, finished: list[int]) -> None:
        """Drop rows (by index), then the columns no row uses any more."""
        gone = set(finished)
        keep = [i for i in range(len(self.rows)) if i not in gone]
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask[keep]
        self.cache = [layer[keep] for layer in self.cache]
        if self.rows:
            used = int(self.mask.any(axis=0).argmax())  # the first column any row uses
            self.mask = self.mask[:, used:]
            self.cache = [layer[:, :, used:] for layer in self.cache]
        else:
            self.mask = np.zeros((0, 0), dtype=np.int64)
            self.cache = []

    def step_inputs(self) -> dict[str, np.ndarray]:
        """The next step's inputs: each row's last token at its own position."""
        rows = len(self.rows)
        mask = np.concatenate([self.mask, np.ones((rows, 1), np.int64)], axis=1)
        inputs = {
            "input_ids": np.array([[s.last_token] for s in self.rows], dtype=np.int64),
            "attention_mask": mask,
            "position_ids": np.array([[s.length] for s in self.rows], dtype=np.int64),
        }
        inputs.update(cache_inputs(self.cache))
        return inputs

    def advance(self, outputs: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
        """Take the step's present as the cache and its mask as ours; the last logits per row."""
        self.mask = mask
        self.cache = cache_outputs(outputs, self.shape.layers)
        for sequence in self.rows:
            sequence.length += 1
        return outputs["logits"][:, -1, :]


def pad_left(array: np.ndarray, width: int, axis: int = 1) -> np.ndarray:
    """Zeros on the left of axis up to width."""
    missing = width - array.shape[axis]
    if missing <= 0:
        return array
    padding = [(0, 0)] * array.ndim
    padding[axis] = (missing, 0)
    return np.pad(array, padding)


def cache_inputs(cache: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-layer key/value arrays as the step's past_key_values inputs."""
    names = {}
    for index, array in enumerate(cache):
        kind = "key" if index % 2 == 0 else "value"
        names[f"past_key_values.{index // 2}.{kind}"] = array
    return names


def cache_outputs(outputs: dict[str, np.ndarray], layers: int) -> list[np.ndarray]:
    """The step's present keys and values, in cache order."""
    return [outputs[f"present.{i}.{kind}"] for i in range(layers) for kind in ("key", "value")]


def empty_cache(shape: ModelShape, rows: int) -> list[np.ndarray]:
    """Past tensors of length 0 (a prompt's first step)."""
    empty = np.zeros((rows, shape.heads, 0, shape.head_dim), dtype=np.float32)
    return [empty] * (2 * shape.layers)


class Engine:
    """The decoding loop: admits requests, steps the batch, hands out text."""

    def __init__(
        self,
        run_step: StepRunner,
        shape: ModelShape,
        encode: Callable[[str], list[int]],
        decode: Callable[[list[int]], str],
        slots: int = 16,
        max_waiting: int = 64,
    ) -> None:
        self.run_step, self.shape = run_step, shape
        self.encode, self.decode = encode, decode
        self.slots, self.max_waiting = slots, max_waiting
        self.batch = DecodeBatch(shape)
        self.waiting: collections.deque[Sequence] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        self.steps = 0
        self._thread = threading.Thread(target=self._loop, name="maas-generate", daemon=True)
        self._thread.start()

    def submit(
        self,
        prompt: str,
        params: SamplingParams,
        emit: Callable[[Chunk], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """Queue a request; raises GenerationError or OverloadedError at once."""
        ids = self.encode(prompt)
        if not ids:
            raise GenerationError("text_input is empty: give a prompt of at least one token")
        room = self.shape.max_positions - params.max_tokens
        if len(ids) > room:
            raise GenerationError(
                f"the prompt is {len(ids)} tokens and max_tokens {params.max_tokens}; together "
                f"they must fit the model's {self.shape.max_positions} positions"
            )
        sequence = Sequence(ids, params, emit, cancelled, TextStream(self.decode, params.stop))
        with self._wake:
            if len(self.waiting) >= self.max_waiting:
                raise OverloadedError(
                    f"all {self.slots} generation slots are busy and {self.max_waiting} "
                    "requests are waiting; retry later"
                )
            self.waiting.append(sequence)
            self._wake.notify()

    def stop(self) -> None:
        """End the loop; requests still running are told the server is stopping."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    @property
    def active(self) -> int:
        """Requests decoding now."""
        return len(self.batch.rows)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self.waiting and not self.batch.rows:
                    self._wake.wait()
                if self._stopping:
                    break
                joining: list[Sequence] = []
                while self.waiting and len(self.batch.rows) + len(joining) < self.slots:
                    joining.append(self.waiting.popleft())
            for sequence in joining:
                self._prefill(sequence)
            if self.batch.rows:
                self._step()
        for sequence in [*self.batch.rows, *self.waiting]:
            sequence.emit(Chunk("", [], True, "error: the server is stopping"))

    def _prefill(self, sequence: Sequence) -> None:
        """Run the prompt alone, send its first token, and join the batch unless done."""
        if self._gone(sequence):
            return
        ids = np.array([sequence.prompt], dtype=np.int64)
        inputs = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "position_ids": np.arange(ids.shape[1], dtype=np.int64)[None, :],
        }
        inputs.update(cache_inputs(empty_cache(self.shape, 1)))
        outputs = self.run_step(inputs)
        sequence.length = len(sequence.prompt)
        if not self._take(sequence, outputs["logits"][0, -1, :]):
            self.batch.join(sequence, cache_outputs(outputs, self.shape.layers))

    def _step(self) -> None:
        inputs = self.batch.step_inputs()
        outputs = self.run_step(inputs)
        logits = self.batch.advance(outputs, inputs["attention_mask"])
        self.steps += 1
        finished = [
            row
            for row, sequence in enumerate(self.batch.rows)
            if self._gone(sequence) or self._take(sequence, logits[row])
        ]
        if finished:
            self.batch.leave(finished)

    @staticmethod
    def _gone(sequence: Sequence) -> bool:
        """Whether the caller went away; its slot is freed at this step."""
        if not sequence.cancelled():
            return False
        sequence.emit(Chunk("", [], True, "cancelled"))
        return True

    def _take(self, sequence: Sequence, logits: np.ndarray) -> bool:
        """Pick and send the next token; whether the sequence is done."""
        token = sequence.sampler.pick(logits)
        sequence.generated += 1
        sequence.last_token = token
        sequence.pending.append(token)
        if token == self.shape.eos_token_id:
            return self._send(sequence, sequence.stream.flush(), "eos")
        text = sequence.stream.push(token)
        if sequence.stream.stopped:
            return self._send(sequence, text, "stop")
        full = sequence.length + 1 >= self.shape.max_positions
        if sequence.generated >= sequence.params.max_tokens or full:
            return self._send(sequence, text + sequence.stream.flush(), "length")
        if text:
            self._send(sequence, text, "")
        return False

    @staticmethod
    def _send(sequence: Sequence, text: str, reason: str) -> bool:
        """Send text with the tokens behind it; whether this was the last chunk."""
        ids, sequence.pending = sequence.pending, []
        sequence.emit(Chunk(text, ids, bool(reason), reason))
        return bool(reason)


def onnx_step(path: Path, threads: int = 0, spin: bool = True) -> StepRunner:
    """The decode step on ONNX Runtime's CPU provider.

    spin=False: ONNX Runtime's threads sleep between steps instead of spinning, leaving the
    cores to what else a server runs per token (Triton, the gateway, the callers).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    return run


def tokenizer_file(folder: Path) -> Path:
    """The tokenizer of a version folder."""
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has no tokenizer ({' or '.join(TOKENIZER_FILES)})")


def load_engine(folder: Path, slots: int = 16, max_waiting: int = 64) -> Engine:
    """An engine over a version folder's model.onnx, tokenizer.json and generation.json."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file(folder)))
    return Engine(
        onnx_step(folder / STEP_FILE, spin=False),
        ModelShape.load(folder / GENERATION_FILE),
        lambda text: tokenizer.encode(text).ids,
        lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        slots,
        max_waiting,
    )


def tokens_alone(
    run_step: StepRunner, shape: ModelShape, prompt: list[int], max_tokens: int
) -> Iterator[int]:
    """Greedy tokens for one prompt with nothing else running: the in-process limit."""
    ids = np.array([prompt], dtype=np.int64)
    inputs = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "position_ids": np.arange(ids.shape[1], dtype=np.int64)[None, :],
        **cache_inputs(empty_cache(shape, 1)),
    }
    length = len(prompt)
    for _ in range(max_tokens):
        outputs = run_step(inputs)
        token = int(np.argmax(outputs["logits"][0, -1]))
        yield token
        if token == shape.eos_token_id or length + 1 >= shape.max_positions:
            return
        inputs = {
            "input_ids": np.array([[token]], dtype=np.int64),
            "attention_mask": np.ones((1, length + 1), dtype=np.int64),
            "position_ids": np.array([[length]], dtype=np.int64),
            **cache_inputs(cache_outputs(outputs, shape.layers)),
        }
        length += 1
