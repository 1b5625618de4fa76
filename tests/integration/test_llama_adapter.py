"""An mlx-lm LoRA adapter exported for llama.cpp runs there like the fused MLX model.

A tiny random-weight llama gets LoRA layers on every linear layer (mlx-lm's
own `linear_to_lora_layers`, with random nonzero `lora_b`, as training leaves
it), saved as `mlx_lm.lora` saves them. The reference is mlx-lm's fused model;
llama.cpp runs the base exported to GGUF plus the exported adapter through the
engine's load path. Logits are compared with tolerances that hold on every CPU
(llama.cpp rounds activations to f16 against an F16 base), and the adapter's
effect is many times those tolerances, so a wrong scale, transpose or q/k
permutation fails the test.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from macllm_app.core.errors import Cancelled, ModelFileError, UserError
from macllm_app.core.finetune.llama_adapter import export_llama_adapter
from macllm_app.core.formats.gguf_reader import read_gguf_header
from macllm_app.core.types import GenerationRequest, LoadConfig, SamplingParams
from tests.support.engine_events import collect_events
from tests.support.mlx_tiny import make_tiny_mlx_model

pytestmark = [pytest.mark.mlx, pytest.mark.llamacpp]

RANK, SCALE = 4, 2.5
PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 32, 84, 104]


def make_adapter(base: Path, dest: Path, kind: str = "lora", seed: int = 1) -> Path:
    """An adapter folder as `mlx_lm.lora` leaves it after training `base`."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model, save_config

    model, _ = load_model(base)
    model.freeze()
    params = {"rank": RANK, "scale": SCALE, "dropout": 0.0}
    linear_to_lora_layers(model, 2, params, use_dora=kind == "dora")
    mx.random.seed(seed)
    for _, module in model.named_modules():
        if "lora_b" in module:  # mlx-lm starts lora_b at zero; training moves it
            module.lora_b = 0.2 * mx.random.normal(module.lora_b.shape)
    dest.mkdir()
    mx.save_safetensors(str(dest / "adapters.safetensors"),
                        dict(tree_flatten(model.trainable_parameters())))
    save_config({"model": str(base), "fine_tune_type": kind, "num_layers": 2,
                 "lora_parameters": params, "train": True, "iters": 10, "batch_size": 1,
                 "adapter_path": str(dest), "seed": 0},
                dest / "adapter_config.json")
    return dest


def mlx_logits(base: Path, adapter: Path | None = None, fuse: bool = True) -> np.ndarray:
    """Last-token logits of `base` (with `adapter`, fused as `mlx_lm.fuse` does)."""
    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_unflatten

    loaded = mlx_lm.load(str(base), adapter_path=str(adapter) if adapter else None)
    model = loaded[0]
    if fuse:
        fused = [(n, m.fuse()) for n, m in model.named_modules() if hasattr(m, "fuse")]
        assert len(fused) == 14 or adapter is None
        model.update_modules(tree_unflatten(fused))
    return np.array(model(mx.array([PROMPT]))[0, -1].astype(mx.float32))


@dataclass
class Setup:
    base: Path
    base_gguf: Path
    adapter: Path
    adapter_gguf: Path
    fused: np.ndarray
    plain: np.ndarray


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf

    root = tmp_path_factory.mktemp("lora")
    base = make_tiny_mlx_model(root / "tiny", seed=3)
    adapter = make_adapter(base, root / "adapter")
    base_gguf = export_mlx_to_gguf(base, root / "tiny.gguf")
    seen: list[float] = []
    adapter_gguf = export_llama_adapter(adapter, base, root / "adapter.gguf",
                                        lambda f, _m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    return Setup(base, base_gguf, adapter, adapter_gguf, mlx_logits(base, adapter),
                 mlx_logits(base))


def llama_logits(model: Path, adapter: Path | None) -> tuple[np.ndarray, int]:
    """Last-token logits and the greedy token, through the llama.cpp engine's load path."""
    import llama_cpp.llama_cpp as lc

    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine()
    engine.load(LoadConfig(model_path=str(model), n_ctx=256, n_threads=2,
                           adapter_path=str(adapter) if adapter else None), lambda f, m: None)
    try:
        request = GenerationRequest(prompt_tokens=tuple(PROMPT), reuse_cache=False,
                                    sampling=SamplingParams.greedy(max_tokens=1))
        _text, ids, _stats = collect_events(engine.stream(request, lambda: False))
        # one token generated and not decoded: the context still holds the prompt's logits
        n_vocab = engine._n_vocab
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(engine._ctx, -1),
                                       shape=(n_vocab,)).copy()
    finally:
        engine.unload()
    return logits, ids[0]


def test_adapter_in_llama_cpp_matches_the_fused_mlx_model(setup: Setup) -> None:
    got, token = llama_logits(setup.base_gguf, setup.adapter_gguf)
    plain, _ = llama_logits(setup.base_gguf, None)
    size = float(np.abs(setup.fused).max())
    tolerance = 0.02 * size
    # the base alone agrees with MLX to the same tolerance (F16 weights, f16 activations)
    assert np.abs(plain - setup.plain).max() < tolerance
    # the adapter changes the logits by far more than the tolerance...
    assert np.abs(setup.fused - setup.plain).max() > 10 * tolerance
    # ... and llama.cpp with the adapter lands on the fused model's logits
    assert np.abs(got - setup.fused).max() < tolerance, np.abs(got - setup.fused).max()
    assert np.corrcoef(got, setup.fused)[0, 1] > 0.999
    top = np.sort(setup.fused)[-2:]
    if top[1] - top[0] > 2 * tolerance:  # no near-tie: the same greedy token
        assert token == int(np.argmax(setup.fused))


def test_the_file_is_a_llama_cpp_lora_adapter(setup: Setup, tmp_path: Path) -> None:
    header = read_gguf_header(setup.adapter_gguf)
    kv = header.kv
    assert kv["general.type"] == "adapter" and kv["adapter.type"] == "lora"
    assert kv["general.architecture"] == "llama"
    assert kv["adapter.lora.alpha"] == pytest.approx(SCALE * RANK)
    dims = {t.name: t.dims for t in header.tensors}
    assert len(dims) == 2 * 7 * 2
    assert dims["blk.0.attn_q.weight.lora_a"] == (64, RANK)  # ggml order: [n_in, r]
    assert dims["blk.0.attn_k.weight.lora_b"] == (RANK, 32)  # [r, n_out]: 2 kv heads of 16
    assert dims["blk.1.ffn_down.weight.lora_a"] == (128, RANK)
    assert {t.type_name for t in header.tensors} == {"F32"}
    # the base given as its GGUF file gives the same adapter
    again = export_llama_adapter(setup.adapter, setup.base_gguf, tmp_path / "again.gguf")
    assert again.read_bytes() == setup.adapter_gguf.read_bytes()


def test_mlx_engine_runs_the_adapter_folder(setup: Setup) -> None:
    import mlx.core as mx

    from macllm_app.core.engines.mlx_engine import MLXEngine

    engine = MLXEngine()
    engine.load(LoadConfig(model_path=str(setup.base), engine="mlx", n_ctx=256,
                           adapter_path=str(setup.adapter)), lambda f, m: None)
    try:
        logits = np.array(engine._model(mx.array([PROMPT]))[0, -1].astype(mx.float32))
    finally:
        engine.unload()
    assert np.abs(logits - setup.fused).max() < 1e-3 * np.abs(setup.fused).max()


def _rewrite_config(folder: Path, **changes: Any) -> None:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _refused(adapter: Path, base: Path, dest: Path, error: type[Exception], match: str) -> str:
    with pytest.raises(error, match=match) as info:
        export_llama_adapter(adapter, base, dest)
    assert not dest.exists() and not list(dest.parent.glob(f".{dest.name}*"))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_dora_and_full_fine_tunes_are_refused(setup: Setup, tmp_path: Path) -> None:
    dora = make_adapter(setup.base, tmp_path / "dora", kind="dora")
    message = _refused(dora, setup.base, tmp_path / "d.gguf", UserError, "DoRA")
    assert "fuse" in message and "export the fused model" in message
    full = tmp_path / "full"
    full.mkdir()
    shutil.copy(setup.base / "model.safetensors", full / "adapters.safetensors")
    (full / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "full", "num_layers": 2, "lora_parameters": None}))
    message = _refused(full, setup.base, tmp_path / "f.gguf", UserError, "full fine-tune")
    assert "fuse" in message


def _adapter_copy(setup: Setup, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(setup.adapter, tmp_path / name))


def test_broken_adapters_are_refused(setup: Setup, tmp_path: Path) -> None:
    dest = tmp_path / "out.gguf"
    _refused(tmp_path / "missing", setup.base, dest, ModelFileError, "not an adapter folder")
    truncated = _adapter_copy(setup, tmp_path, "truncated")
    weights = truncated / "adapters.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    _refused(truncated, setup.base, dest, ModelFileError, "adapters.safetensors")
    bad_json = _adapter_copy(setup, tmp_path, "bad-json")
    (bad_json / "adapter_config.json").write_text("{not json")
    _refused(bad_json, setup.base, dest, ModelFileError, "not valid JSON")
    no_scale = _adapter_copy(setup, tmp_path, "no-scale")
    _rewrite_config(no_scale, lora_parameters={"rank": RANK, "dropout": 0.0})
    _refused(no_scale, setup.base, dest, ModelFileError, "scale")
    wrong_rank = _adapter_copy(setup, tmp_path, "wrong-rank")
    _rewrite_config(wrong_rank, lora_parameters={"rank": 8, "scale": SCALE, "dropout": 0.0})
    _refused(wrong_rank, setup.base, dest, ModelFileError, "configured rank 8")
    no_weights = _adapter_copy(setup, tmp_path, "no-weights")
    (no_weights / "adapters.safetensors").unlink()
    _refused(no_weights, setup.base, dest, ModelFileError, "no adapters.safetensors")


def test_an_adapter_for_another_model_is_refused(setup: Setup, tmp_path: Path) -> None:
    other = Path(shutil.copytree(setup.base, tmp_path / "other"))
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "intermediate_size": 96}))
    _refused(setup.adapter, other, tmp_path / "o.gguf", UserError,
             "does not fit other: model.layers.0.mlp.down_proj is 64x128 in the adapter, "
             "64x96 in the base model")
    (other / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    _refused(setup.adapter, other, tmp_path / "o.gguf", UserError, "model.layers.1")
    _refused(setup.adapter, setup.adapter_gguf, tmp_path / "o.gguf", UserError,
             "an adapter, not a base model")


def test_an_existing_destination_is_kept(setup: Setup, tmp_path: Path) -> None:
    dest = tmp_path / "taken.gguf"
    dest.write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists"):
        export_llama_adapter(setup.adapter, setup.base, dest)
    assert dest.read_bytes() == b"mine"


def test_cancel_leaves_nothing(setup: Setup, tmp_path: Path) -> None:
    dest = tmp_path / "cancelled.gguf"
    with pytest.raises(Cancelled):
        export_llama_adapter(setup.adapter, setup.base, dest, should_stop=lambda: True)
    assert list(tmp_path.iterdir()) == [tmp_path / "macllm-home"]


def _write_adapter_gguf(path: Path, tensors: Mapping[str, tuple[int, ...]],
                        edit: Callable[[Any], None] | None = None) -> Path:
    """A hand-made adapter GGUF: `tensors` maps names to numpy shapes."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    if edit is not None:
        edit(writer)
    else:
        writer.add_float32("adapter.lora.alpha", 8.0)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_llama_cpp_engine_refuses_bad_adapters_and_keeps_working(setup: Setup,
                                                                 tmp_path: Path) -> None:
    from macllm_app.core.engines.llamacpp import LlamaCppEngine

    q = "blk.0.attn_q.weight"
    cases = {
        "shape": ({f"{q}.lora_a": (4, 32), f"{q}.lora_b": (64, 4)}, None,
                  "an adapter for another model"),
        "name": ({"blk.7.attn_q.weight.lora_a": (4, 64),
                  "blk.7.attn_q.weight.lora_b": (64, 4)}, None, "does not exist"),
        "half": ({f"{q}.lora_a": (4, 64)}, None, "lacks its lora_a or lora_b"),
        "alpha": ({f"{q}.lora_a": (4, 64), f"{q}.lora_b": (64, 4)},
                  lambda w: w.add_float64("adapter.lora.alpha", 8.0), "must be a float32"),
    }
    engine = LlamaCppEngine()
    try:
        for name, (tensors, edit, match) in cases.items():
            adapter = _write_adapter_gguf(tmp_path / f"{name}.gguf", tensors, edit)
            config = LoadConfig(model_path=str(setup.base_gguf), n_ctx=128, n_threads=2,
                                adapter_path=str(adapter))
            with pytest.raises(ModelFileError, match=match) as info:
                engine.load(config, lambda f, m: None)
            assert "\n" not in str(info.value), name
        with pytest.raises(ModelFileError, match=r"mlx-lm adapter folder; llama\.cpp needs"):
            engine.load(LoadConfig(model_path=str(setup.base_gguf), n_ctx=128, n_threads=2,
                                   adapter_path=str(setup.adapter)), lambda f, m: None)
        # a well-formed adapter loads, and the engine still runs models after the refusals
        fine = _write_adapter_gguf(tmp_path / "fine.gguf",
                                   {f"{q}.lora_a": (4, 64), f"{q}.lora_b": (64, 4)})
        info_ = engine.load(LoadConfig(model_path=str(setup.base_gguf), n_ctx=128,
                                       n_threads=2, adapter_path=str(fine)), lambda f, m: None)
        assert info_.engine == "llama.cpp"
        request = GenerationRequest(prompt_tokens=tuple(PROMPT),
                                    sampling=SamplingParams.greedy(max_tokens=2))
        _text, ids, _stats = collect_events(engine.stream(request, lambda: False))
        assert len(ids) >= 1
    finally:
        engine.unload()
