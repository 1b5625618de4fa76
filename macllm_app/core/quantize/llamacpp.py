"""llama.cpp quantization: a GGUF file (or an MLX llama folder, through its F16 GGUF
export) to any type `llama-quantize` makes, by llama.cpp's own quantizer
(`llama_model_quantize`), in a job.

- `plan_quantize` checks everything first, in the caller's process, reading only
  headers: the source (the GGUF check; an already quantized file only with
  `allow_requantize`, never one at or below the target), the type (one that needs
  an importance matrix without one), the destination (never over an existing file
  or the source) and the free disk space. Each problem is one line.
- `quantize_into_library` (the job's target, `QUANTIZE_TARGET`) writes to a staging
  name beside the destination and renames it only when complete; it reports
  "tensor i of n" with an ETA from llama.cpp's log, and adds the result to the
  library with its provenance. The native call cannot be interrupted: a cancel
  kills the job (`CANCEL_GRACE_S`), and the staging file goes with it.
"""

from __future__ import annotations

import ctypes
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from macllm_app.core.convert.staging import check_dest_file, staged_file
from macllm_app.core.errors import Cancelled, ModelFileError, UserError
from macllm_app.core.formats.ggml_types import TENSOR_TYPES
from macllm_app.core.formats.inspect import inspect_model
from macllm_app.core.formats.metadata import ModelMetadata
from macllm_app.core.library.conversions import add_to_library, check_space, gguf_export_block
from macllm_app.core.quantize.llama_types import LlamaType, llama_type
from macllm_app.core.types import ProgressCallback, StopCheck

QUANTIZE_TARGET = f"{__name__}:quantize_into_library"
QUANTIZE_TITLE = "Quantizing"
#: llama.cpp quantizes in one native call that never looks at a cancel flag, so a
#: cancelled job is killed almost at once (its staging file is removed after it).
CANCEL_GRACE_S = 1.0
#: A quantized file's header and tensor padding, on top of its weights.
SIZE_SLACK = 1.05
FLOAT_SOURCES = ("F32", "F16", "BF16")
_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_GGML_BY_NAME = {t.name: type_id for type_id, t in TENSOR_TYPES.items()}


@dataclass(frozen=True, slots=True)
class QuantizeOptions:
    """llama-quantize's useful switches."""

    threads: int = 0                        # 0: llama.cpp chooses
    output_tensor_type: str | None = None   # a ggml type for output.weight ("Q8_0")
    token_embedding_type: str | None = None  # a ggml type for token_embd.weight
    pure: bool = False                      # one type for every tensor, no mixes
    tensor_types: tuple[tuple[str, str], ...] = ()  # (tensor name regex, ggml type)
    allow_requantize: bool = False
    imatrix: str | None = None              # an importance matrix file


@dataclass(frozen=True, slots=True)
class QuantizePlan:
    source: str              # the model to quantize
    dest: str                # the new GGUF file
    type: str
    options: QuantizeOptions = field(default_factory=QuantizeOptions)
    source_type: str = ""
    expected_bytes: int = 0
    warning: str = ""        # said before the work starts (requantizing)


def ggml_type_id(name: str) -> int:
    found = _GGML_BY_NAME.get(name.upper())
    if found is None:
        raise UserError(f"Unknown tensor type {name!r}: choose one of "
                        f"{', '.join(sorted(_GGML_BY_NAME))}.")
    return found


def _source(path: Path) -> ModelMetadata:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or folder")
    meta = inspect_model(path)
    if meta.format == "mlx":
        reason = gguf_export_block(meta)
        if reason is not None:
            raise UserError(f"{path.name} cannot be quantized by llama.cpp: {reason}")
    return meta


def _check_requantize(meta: ModelMetadata, target: LlamaType,
                      options: QuantizeOptions) -> str:
    """The warning for requantizing, or a one-line error where it is refused."""
    current = "F16" if meta.format == "mlx" and meta.quantization in ("unknown", "none") \
        else meta.quantization
    if current in FLOAT_SOURCES or meta.format == "mlx":
        return ""
    try:
        known = llama_type(current)
    except UserError:
        known = None
    if known is not None and known.bits_per_weight <= target.bits_per_weight:
        raise UserError(f"{Path(meta.path).name} is already {current} "
                        f"({known.bits_per_weight:g} bits per weight), at or below "
                        f"{target.name} ({target.bits_per_weight:g}): quantizing again cannot "
                        "make it better.")
    if not options.allow_requantize:
        raise UserError(f"{Path(meta.path).name} is already quantized ({current}); "
                        "quantizing it again loses more quality than starting from F16 or F32. "
                        "Allow requantizing to go ahead anyway.")
    return (f"Requantizing from {current} rounds the weights twice: expect more quality "
            f"loss than {target.name} made from an F16 file.")


def plan_quantize(src: str | Path, dest: str | Path, type_name: str,
                  options: QuantizeOptions | None = None, *,
                  imatrix_coming: bool = False) -> QuantizePlan:
    """Check a quantization before any work (see the module docstring);
    `imatrix_coming`: an importance matrix will be computed for it first."""
    options = options or QuantizeOptions()
    source, target_path = Path(src).expanduser(), Path(dest).expanduser()
    target = llama_type(type_name)
    meta = _source(source)
    warning = _check_requantize(meta, target, options)
    if target.needs_imatrix and not options.imatrix and not imatrix_coming:
        raise UserError(f"{target.name} needs an importance matrix: compute one from a "
                        "calibration text, or give an imatrix file made elsewhere.")
    if options.imatrix and not Path(options.imatrix).is_file():
        raise UserError(f"{options.imatrix}: no such importance matrix file")
    for name in (options.output_tensor_type, options.token_embedding_type,
                 *(kind for _pattern, kind in options.tensor_types)):
        if name:
            ggml_type_id(name)
    for tensor, name in (("output", options.output_tensor_type),
                         ("token embedding", options.token_embedding_type)):
        block = TENSOR_TYPES[ggml_type_id(name)].block_size if name else 1
        if meta.embedding_length and meta.embedding_length % block:
            raise UserError(f"{name} stores rows in blocks of {block} values; this model's "
                            f"{tensor} rows have {meta.embedding_length}: choose another "
                            "type for them (Q8_0, Q5_0, Q4_0 or F16 take any multiple of 32).")
    for pattern, _kind in options.tensor_types:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UserError(f"The tensor pattern {pattern!r} is not a regular expression "
                            f"({exc}).") from None
    if target_path.resolve() == source.resolve():
        raise UserError("The quantized model cannot replace its source.")
    check_dest_file(target_path)
    expected = int(target.expected_bytes(meta.n_params) * SIZE_SLACK)
    scratch = 2 * meta.n_params if meta.format == "mlx" else 0  # the F16 export on the way
    check_space(target_path.parent, expected + scratch)
    return QuantizePlan(str(source), str(target_path), target.name, options, meta.quantization,
                        expected, warning)


# -- in the job process ----------------------------------------------------------------
class _TensorProgress:
    """Reads llama.cpp's quantize log ("[ 12/ 272] blk.0.attn_q.weight ...") into
    progress with an ETA; llama.cpp's own log lines arrive in pieces."""

    def __init__(self, progress: ProgressCallback, start: float, share: float) -> None:
        self.progress = progress
        self.start, self.share = start, share
        self.began = time.monotonic()
        self.pending = ""
        self.errors: list[str] = []

    def __call__(self, level: int, text: bytes | None, _user_data: Any) -> None:
        self.pending += (text or b"").decode("utf-8", errors="replace")
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.line(level, line)

    def line(self, level: int, line: str) -> None:
        if level == 4 and line.strip():  # GGML_LOG_LEVEL_ERROR
            self.errors.append(line.strip())
        found = _TENSOR_LINE.search(line)
        if found is None:
            return
        done, total, name = int(found.group(1)), int(found.group(2)), found.group(3)
        elapsed = time.monotonic() - self.began
        eta = elapsed / done * (total - done) if done else 0.0
        self.progress(self.start + self.share * done / total,
                      f"tensor {done} of {total} ({name}), about {eta:.0f} s left")


def _params(lc: Any, plan: QuantizePlan, keep: list[Any]) -> Any:
    options = plan.options
    params = lc.llama_model_quantize_default_params()
    params.ftype = llama_type(plan.type).ftype
    params.nthread = options.threads
    params.allow_requantize = options.allow_requantize
    params.pure = options.pure
    if options.output_tensor_type:
        params.output_tensor_type = ggml_type_id(options.output_tensor_type)
    if options.token_embedding_type:
        params.token_embedding_type = ggml_type_id(options.token_embedding_type)
    if options.tensor_types:
        overrides = (lc.llama_model_tensor_override * (len(options.tensor_types) + 1))()
        for slot, (pattern, kind) in zip(overrides, options.tensor_types, strict=False):
            slot.pattern, slot.type = pattern.encode(), ggml_type_id(kind)
        keep.append(overrides)
        params.tt_overrides = ctypes.cast(overrides, ctypes.POINTER(lc.llama_model_tensor_override))
    if options.imatrix:
        from macllm_app.core.quantize.imatrix import imatrix_entries

        params.imatrix = imatrix_entries(lc, Path(options.imatrix), keep)
    return params


def quantize_into_library(plan: QuantizePlan, progress: ProgressCallback,
                          should_stop: StopCheck) -> dict[str, Any]:
    """The job: quantize `plan.source` into `plan.dest` and add it to the library."""
    import llama_cpp.llama_cpp as lc

    source, dest = Path(plan.source), Path(plan.dest)
    with staged_file(dest) as staging:
        start = 0.0
        if source.is_dir():
            from macllm_app.core.convert.mlx_to_gguf import export_mlx_to_gguf
            from macllm_app.core.progress import span

            f16 = staging.with_name(staging.name + ".f16.gguf")
            try:
                export_mlx_to_gguf(source, f16, progress=span(progress, 0.0, 0.3),
                                   should_stop=should_stop)
                start, quantize_from = 0.3, f16
                _quantize(lc, plan, quantize_from, staging, progress, start)
            finally:
                f16.unlink(missing_ok=True)
        else:
            _quantize(lc, plan, source, staging, progress, start)
        if should_stop():  # cancelled while llama.cpp finished: keep nothing
            raise Cancelled
    progress(1.0, f"Quantized to {plan.type}")
    return add_to_library(dest, {
        "quantized_from": str(source), "quantization": plan.type,
        "imatrix": plan.options.imatrix or "", "made_at": datetime.now(UTC).isoformat(),
        "tool": f"llama.cpp (llama-cpp-python {metadata.version('llama-cpp-python')})",
        "options": repr(asdict(plan.options))})


def _quantize(lc: Any, plan: QuantizePlan, source: Path, staging: Path,
              progress: ProgressCallback, start: float) -> None:
    reader = _TensorProgress(progress, start, 1.0 - start)
    callback = lc.llama_log_callback(reader)
    lc.llama_log_set(callback, ctypes.c_void_p(0))
    keep: list[Any] = []
    params = _params(lc, plan, keep)
    progress(start, f"Quantizing to {plan.type}")
    code = lc.llama_model_quantize(str(source).encode(), str(staging).encode(),
                                   ctypes.byref(params))
    if code != 0:
        reason = reader.errors[0] if reader.errors else f"error {code}"
        raise UserError(f"llama.cpp could not quantize {source.name}: {reason}")


PLAN_AND_QUANTIZE_TARGET = f"{__name__}:plan_and_quantize"


def plan_and_quantize(source: str, dest: str, type_name: str, options: QuantizeOptions,
                      progress: ProgressCallback, should_stop: StopCheck) -> dict[str, Any]:
    """The job for a quantization whose importance matrix was computed just before it
    (checked again now that the matrix exists)."""
    return quantize_into_library(plan_quantize(source, dest, type_name, options), progress,
                                 should_stop)
