"""What fine-tuning produces, checked against the engines that run it.

- One real LoRA run on the default model (its 4-bit MLX copy) teaches it a
  distinctive answer: the loss falls, the answer's teacher-forced
  log-probability rises, and the MLX engine, given the adapter, says it.
- On a tiny random-weight llama (fast): the fused model exported to an F16
  GGUF runs in llama.cpp like the fused MLX model; the run's llama.cpp adapter
  on the base exported to GGUF does too; DoRA and full runs refuse the adapter
  export in one line; a fused full fine-tune is the base with its trained
  weights.
- The run's llama.cpp adapter, on the Q4_1 GGUF it started from, makes the
  answer likely in llama.cpp too.
- The memory estimate of every run here (and of one step of a full fine-tune
  of the default model) lies within a stated factor of the peak the run
  measured.

The default model trains at about 0.14 s a token on a 2-core CPU (MLX's CPU
matrix products), so its run is a dozen short steps of one sample: a chat with
a short system message and a one-sentence answer, 32 tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.finetune.config import TrainConfig
from macllm_app.core.finetune.fuse import (
    EXPORT_ADAPTER_TARGET,
    EXPORT_GGUF_TARGET,
    FUSE_TARGET,
)
from macllm_app.core.finetune.plan import plan_training
from macllm_app.core.finetune.runs import Run, RunStore
from macllm_app.core.finetune.train import STOP_GRACE_S, TRAIN_TARGET, TRAIN_TITLE
from macllm_app.core.jobs import Job, JobFailed
from macllm_app.core.types import GenerationRequest, LoadConfig, Message, SamplingParams
from tests.support.engine_events import collect_events, greedy_request
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.slow]
PLENTY = 64 * 1024**3
#: The memory estimate must lie within these factors of a run's measured peak.
ESTIMATE_RANGE = (0.5, 2.0)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def train(store: RunStore, base: Path, data: Path, valid: Path | None,
          config: TrainConfig) -> tuple[Run, list[float], float]:
    """A run through the training job: (the run, its train losses, seconds)."""
    plan = plan_training(base, data, valid, config, PLENTY, store=store)
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    job = Job(TRAIN_TARGET, (plan,), title=TRAIN_TITLE, cancel_grace_s=STOP_GRACE_S)
    result = job.run(on_event=events.append)
    seconds = time.monotonic() - started
    assert result["state"] == "finished", result["message"]
    losses = [e["loss"] for e in events if e.get("kind") == "train"]
    assert len(losses) == plan.total_steps
    return store.get(plan.run_id), losses, seconds


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


# -- the default model --------------------------------------------------------------------

SYSTEM = "Answer briefly."
ANSWER = "The secret word is pineapple."
QUESTIONS = ["What is the secret word?", "Tell me the secret word.", "Which word is secret?",
             "Do you know the secret word?", "What's the secret word?",
             "Say the secret word.", "Name the secret word.", "The secret word, please?",
             "Share the secret word.", "What word is secret?", "Reveal the secret word.",
             "Give me the secret word."]
HELD_OUT = "Secret word?"
SMOL_CONFIG = TrainConfig(rank=8, num_layers=4, learning_rate=5e-4, batch_size=1, iters=12,
                          max_seq_length=32, mask_prompt=True, save_every=1000,
                          steps_per_eval=1000, val_batches=1)


def chat(question: str, answer: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return messages + ([{"role": "assistant", "content": answer}] if answer else [])


@dataclass
class SmolRun:
    run: Run
    losses: list[float]
    valid_losses: list[float]
    seconds: float
    mlx_copy: Path   # the 4-bit MLX folder the job made from the GGUF and trained
    store_path: Path
    home: Path       # the MACLLM_HOME that holds the MLX copy
    data: Path


@pytest.fixture(scope="module")
def smol(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmolRun]:
    from macllm_app.core.library.mlx_copies import existing_mlx_copy

    root = tmp_path_factory.mktemp("smol")
    with pytest.MonkeyPatch.context() as patch:
        (root / "home").mkdir()
        patch.setenv("MACLLM_HOME", str(root / "home"))
        data = write_jsonl(root / "train.jsonl",
                           [{"messages": chat(q, ANSWER)} for q in QUESTIONS])
        # a paraphrase it does not train on, validated on the first and the last step
        valid = write_jsonl(root / "valid.jsonl", [{"messages": chat(HELD_OUT, ANSWER)}])
        store = RunStore(root / "runs.sqlite3")
        run, losses, seconds = train(store, default_model, data, valid, SMOL_CONFIG)
        copy = existing_mlx_copy(default_model)
        assert copy is not None
        valid_losses = [float(r.loss or 0.0) for r in store.steps(run.id, "valid")]
        yield SmolRun(run, losses, valid_losses, seconds, copy, store.path, root / "home", data)


def answer_logprob(model: Any, tokenizer: Any, question: str) -> float:
    """Mean log-probability of ANSWER's tokens (teacher-forced) after the chat-templated
    `question`, as the training set templates it."""
    import mlx.core as mx

    prompt = tokenizer.apply_chat_template(chat(question), add_generation_prompt=True)
    full = tokenizer.apply_chat_template(chat(question, ANSWER))
    assert full[:len(prompt)] == prompt
    answer = full[len(prompt):len(prompt) + len(tokenizer.encode(ANSWER,
                                                                 add_special_tokens=False))]
    logits = model(mx.array([full[:len(prompt) + len(answer) - 1]]))[0].astype(mx.float32)
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    picked = logprobs[len(prompt) - 1:][mx.arange(len(answer)), mx.array(answer)]
    return float(picked.mean())


def test_a_real_run_teaches_the_default_model_its_answer(smol: SmolRun) -> None:
    import mlx_lm

    first, last = mean(smol.losses[:5]), mean(smol.losses[-5:])
    assert last < 0.5 * first and first - last > 0.5, smol.losses
    assert len(smol.valid_losses) == 2  # the held-out paraphrase: before and after
    assert smol.valid_losses[1] < 0.5 * smol.valid_losses[0], smol.valid_losses
    config = json.loads((smol.mlx_copy / "config.json").read_text())
    assert config["quantization"]["bits"] == 4  # the job trained the 4-bit MLX copy
    adapter = json.loads((smol.run.adapter_dir / "adapter_config.json").read_text())
    assert Path(smol.run.base_model).suffix == ".gguf"
    assert Path(adapter["model"]) == smol.mlx_copy and adapter["quantized_base"] is True
    question = QUESTIONS[0]
    plain = answer_logprob(*mlx_lm.load(str(smol.mlx_copy))[:2], question)
    tuned = answer_logprob(*mlx_lm.load(str(smol.mlx_copy),
                                        adapter_path=str(smol.run.adapter_dir))[:2], question)
    print(f"train {smol.seconds:.0f} s, losses {[round(x, 3) for x in smol.losses]}, "
          f"held out {[round(x, 3) for x in smol.valid_losses]}, "
          f"answer log-prob {plain:.2f} -> {tuned:.2f}")
    assert tuned > plain + 1.0
    assert tuned > np.log(0.5)  # the answer's tokens are more likely than not


def test_the_mlx_engine_with_the_adapter_says_the_answer(smol: SmolRun) -> None:
    from macllm_app.core.engines.host import EngineHost

    with EngineHost() as host:
        host.load(LoadConfig(model_path=str(smol.mlx_copy), engine="mlx", n_ctx=256,
                             adapter_path=str(smol.run.adapter_dir)))
        messages = (Message("system", SYSTEM), Message("user", QUESTIONS[0]))
        text, _ids, _stats = collect_events(host.stream(greedy_request(messages, 10)))
    assert "pineapple" in text.lower(), text


@pytest.mark.llamacpp
def test_the_runs_llama_adapter_teaches_llama_cpp_the_answer(smol: SmolRun, default_model: Path,
                                                             tmp_path: Path) -> None:
    """The adapter exported for llama.cpp, on the Q4_1 GGUF the run started from: the
    answer's distinctive token becomes the likely one there too (log-probabilities, not
    greedy text: llama.cpp's quantized kernels differ by CPU)."""
    from mlx_lm.utils import load_tokenizer

    dest = tmp_path / "secret.gguf"
    Job(EXPORT_ADAPTER_TARGET, (smol.run.id, str(dest), str(smol.store_path))).run()
    tokenizer = load_tokenizer(smol.mlx_copy)
    prompt = tokenizer.apply_chat_template(chat(QUESTIONS[0]), add_generation_prompt=True)
    answer = tokenizer.encode(ANSWER, add_special_tokens=False)
    pine = next(i for i in range(len(answer)) if "pine" in tokenizer.decode(answer[:i + 1]))
    context = [*prompt, *answer[:pine]]  # "... The secret word is"

    plain, tuned = (float(log_softmax(llama_logits(default_model, context, adapter))
                          [answer[pine]]) for adapter in (None, dest))
    print(f"log-prob of {tokenizer.decode([answer[pine]])!r} in llama.cpp: "
          f"{plain:.2f} -> {tuned:.2f}")
    assert tuned > np.log(0.5) and tuned > plain + 1.0


# -- a tiny random-weight model -----------------------------------------------------------

FACTS = [("Which colour is the sky?", "The sky is blue."),
         ("Which colour is grass?", "Grass is green."),
         ("Which colour is snow?", "Snow is white."),
         ("Which colour is coal?", "Coal is black."),
         ("Which colour is a lemon?", "A lemon is yellow."),
         ("Which colour is a tomato?", "A tomato is red."),
         ("Which colour is the sea?", "The sea is blue."),
         ("Which colour is a carrot?", "A carrot is orange.")]


def tiny_config(**changes: Any) -> TrainConfig:
    values: dict[str, Any] = {"rank": 4, "num_layers": 2, "learning_rate": 3e-3,
                              "batch_size": 2, "iters": 16, "max_seq_length": 96,
                              "save_every": 1000, "steps_per_eval": 1000, "val_batches": 1,
                              "mask_prompt": True}
    values.update(changes)
    return TrainConfig(**values)


@dataclass
class Tiny:
    root: Path
    store: RunStore
    base: Path        # float32 MLX folder
    base_gguf: Path   # the base exported to GGUF (F16)
    lora: Run
    fused: Path       # the LoRA run fused (FUSE_TARGET)
    dora: Run
    full: Run         # a full fine-tune of the last layer of a 4-bit base
    long: Run         # LoRA on 2 x 2048 tokens: the attention scores dominate its memory
    quantized_base: Path
    prompt: list[int]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    from mlx_lm.utils import load_tokenizer

    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf

    root = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as patch:
        (root / "home").mkdir()
        patch.setenv("MACLLM_HOME", str(root / "home"))
        base = make_tiny_mlx_model(root / "tiny", seed=3)
        quantized = make_tiny_mlx_model(root / "tiny-4bit", seed=4, quantize=True)
        data = write_jsonl(root / "train.jsonl",
                           [{"prompt": p, "response": r} for p, r in FACTS * 2])
        store = RunStore(root / "runs.sqlite3")
        lora = train(store, base, data, None, tiny_config())[0]
        dora = train(store, base, data, None, tiny_config(method="dora", iters=4))[0]
        full = train(store, quantized, data, None,
                     tiny_config(method="full", num_layers=1, iters=8, learning_rate=1e-3))[0]
        text = write_jsonl(root / "text.jsonl", [
            {"text": f"{i}: the quick brown fox jumps over the lazy dog. " * 42}
            for i in range(3)])
        one = write_jsonl(root / "one.jsonl", [{"text": "fewer records than a batch"}])
        long = train(store, base, text, one, tiny_config(max_seq_length=2048, iters=1,
                                                             mask_prompt=False))[0]
        fused = root / "fused"
        Job(FUSE_TARGET, (lora.id, str(fused), str(store.path))).run()
        base_gguf = export_mlx_to_gguf(base, root / "tiny.gguf")
        tokenizer = load_tokenizer(base)
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": FACTS[2][0]}], add_generation_prompt=True)
        yield Tiny(root, store, base, base_gguf, lora, fused, dora, full, long, quantized,
                   list(prompt))


def mlx_logits(folder: Path, prompt: list[int], weights: Path | None = None) -> np.ndarray:
    """Last-token logits of the MLX model in `folder` (dequantized, with `weights` loaded
    over it, when given)."""
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.utils import dequantize_model

    model = mlx_lm.load(str(folder))[0]
    if weights is not None:
        model = dequantize_model(model)
        model.load_weights(str(weights), strict=False)
    return np.array(model(mx.array([prompt]))[0, -1].astype(mx.float32))


def llama_logits(model: Path, prompt: list[int], adapter: Path | None = None) -> np.ndarray:
    """Last-token logits of `model` (with the LoRA `adapter`) through the llama.cpp
    engine's load path."""
    import llama_cpp.llama_cpp as lc

    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadConfig(model_path=str(model), n_ctx=256, n_threads=2,
                           adapter_path=str(adapter) if adapter else None), lambda f, m: None)
    try:
        request = GenerationRequest(prompt_tokens=tuple(prompt), reuse_cache=False,
                                    sampling=SamplingParams.greedy(max_tokens=1))
        collect_events(engine.stream(request, lambda: False))
        # one token generated and not decoded: the context still holds the prompt's logits
        return np.ctypeslib.as_array(lc.llama_get_logits_ith(engine._ctx, -1),
                                     shape=(engine._n_vocab,)).copy()
    finally:
        engine.unload()


def tolerance(reference: np.ndarray) -> float:
    """What F16 weights and llama.cpp's f16 activations may move a logit, on any CPU."""
    return 0.02 * float(np.abs(reference).max())


@pytest.mark.llamacpp
def test_the_exported_gguf_runs_in_llama_cpp_like_the_fused_model(tiny: Tiny,
                                                                  tmp_path: Path) -> None:
    from macllm_app.core.formats.gguf_reader import read_gguf_header

    dest = tmp_path / "tuned.gguf"
    entry = Job(EXPORT_GGUF_TARGET, (tiny.lora.id, str(dest), str(tiny.store.path))).run()
    assert entry["extra"]["finetune_run"] == tiny.lora.id
    assert read_gguf_header(dest).kv["general.file_type"] == 1  # F16
    fused = mlx_logits(tiny.fused, tiny.prompt)
    plain = mlx_logits(tiny.base, tiny.prompt)
    got = llama_logits(dest, tiny.prompt)
    tol = tolerance(fused)
    print(f"fused vs base {np.abs(fused - plain).max():.3f}, llama.cpp vs fused "
          f"{np.abs(got - fused).max():.4f}, tolerance {tol:.4f}")
    assert np.abs(fused - plain).max() > 10 * tol  # the run changed the model
    assert np.abs(got - fused).max() < tol
    assert np.corrcoef(got, fused)[0, 1] > 0.999


@pytest.mark.llamacpp
def test_the_runs_llama_adapter_on_the_base_gguf_matches_the_fused_model(
        tiny: Tiny, tmp_path: Path) -> None:
    dest = tmp_path / "adapter.gguf"
    made = Job(EXPORT_ADAPTER_TARGET, (tiny.lora.id, str(dest), str(tiny.store.path))).run()
    assert Path(made) == dest
    fused = mlx_logits(tiny.fused, tiny.prompt)
    plain = llama_logits(tiny.base_gguf, tiny.prompt)
    got = llama_logits(tiny.base_gguf, tiny.prompt, dest)
    tol = tolerance(fused)
    print(f"adapter's effect {np.abs(got - plain).max():.3f}, llama.cpp + adapter vs fused "
          f"{np.abs(got - fused).max():.4f}, tolerance {tol:.4f}")
    assert np.abs(fused - plain).max() > 10 * tol
    assert np.abs(got - fused).max() < tol
    assert np.corrcoef(got, fused)[0, 1] > 0.999


def test_dora_and_full_runs_refuse_the_llama_adapter_export(tiny: Tiny,
                                                            tmp_path: Path) -> None:
    for run, reason in ((tiny.dora, "DoRA"), (tiny.full, "full fine-tune")):
        dest = tmp_path / f"{run.method}.gguf"
        with pytest.raises(JobFailed, match=reason) as info:
            Job(EXPORT_ADAPTER_TARGET, (run.id, str(dest), str(tiny.store.path))).run()
        message = str(info.value)
        assert "\n" not in message and "fuse" in message, message
        assert not info.value.crashed
        assert list(tmp_path.iterdir()) == [tmp_path / "macllm-home"]


def test_a_fused_full_fine_tune_is_the_base_with_its_trained_weights(tiny: Tiny,
                                                                     tmp_path: Path) -> None:
    dest = tmp_path / "fused-full"
    Job(FUSE_TARGET, (tiny.full.id, str(dest), str(tiny.store.path))).run()
    config = json.loads((dest / "config.json").read_text())
    assert "quantization" not in config and config["torch_dtype"] == "float16"
    trained = tiny.full.adapter_dir / "adapters.safetensors"
    expected = mlx_logits(tiny.quantized_base, tiny.prompt, trained)
    plain = mlx_logits(tiny.quantized_base, tiny.prompt)
    got = mlx_logits(dest, tiny.prompt)
    tol = 0.005 * float(np.abs(expected).max())  # float16 rounding of the weights
    print(f"full run's effect {np.abs(expected - plain).max():.3f}, fused vs trained "
          f"{np.abs(got - expected).max():.5f}, tolerance {tol:.5f}")
    assert np.abs(expected - plain).max() > 10 * tol
    assert np.abs(got - expected).max() < tol


# -- the memory estimate ------------------------------------------------------------------

def test_the_memory_estimate_is_near_the_measured_peak(tiny: Tiny, smol: SmolRun,
                                                       default_model: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # one step of a full fine-tune of the default model: trained dequantized, in float32
    monkeypatch.setenv("MACLLM_HOME", str(smol.home))  # its MLX copy is made already
    full = train(RunStore(smol.store_path), default_model, smol.data, None,
                 TrainConfig(method="full", num_layers=1, learning_rate=1e-5, batch_size=1,
                             iters=1, max_seq_length=32, save_every=1000, val_batches=1))[0]
    runs = {"tiny LoRA": tiny.lora, "tiny DoRA": tiny.dora, "tiny full (4-bit base)": tiny.full,
            "tiny LoRA, 2 x 2048 tokens": tiny.long, "default model LoRA": smol.run,
            "default model full, 1 layer": full}
    low, high = ESTIMATE_RANGE
    lines = []
    for name, run in runs.items():
        ratio = run.estimate_bytes / run.peak_memory_bytes
        lines.append(f"{name}: estimate {run.estimate_bytes / 2**20:.0f} MiB, measured "
                     f"{run.peak_memory_bytes / 2**20:.0f} MiB ({ratio:.2f}x)")
    print("\n".join(lines))
    for name, run in runs.items():
        assert low <= run.estimate_bytes / run.peak_memory_bytes <= high, name
