"""Every llama.cpp file type llama-cpp-python 0.3.36 can quantize to, with the bits
per weight `llama-quantize --help` gives for it (the block layout for the newest)
and whether it needs an importance matrix. TQ1_0/TQ2_0 apply to ternary models and
Q1_0 to rows a multiple of 128 wide; elsewhere llama.cpp falls back or refuses,
and says which tensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from macllm_app.core.errors import UserError

Family = Literal["float", "legacy", "k-quant", "i-quant", "ternary", "fp4"]


@dataclass(frozen=True, slots=True)
class LlamaType:
    name: str               # as llama-quantize spells it: "Q4_K_M"
    ftype: int              # LLAMA_FTYPE_MOSTLY_* (LLAMA_FTYPE_ALL_F32 for F32)
    bits_per_weight: float  # llama.cpp's figure for a 7B llama; small models differ a little
    family: Family
    needs_imatrix: bool = False

    def expected_bytes(self, n_params: int) -> int:
        """About how large a model of `n_params` weights comes out."""
        return int(n_params * self.bits_per_weight / 8)


LLAMA_TYPES: tuple[LlamaType, ...] = (
    LlamaType("F32", 0, 32.0, "float"),
    LlamaType("F16", 1, 16.0, "float"),
    LlamaType("BF16", 32, 16.0, "float"),
    LlamaType("Q8_0", 7, 8.5, "legacy"),
    LlamaType("Q6_K", 18, 6.56, "k-quant"),
    LlamaType("Q5_1", 9, 6.0, "legacy"),
    LlamaType("Q5_K_M", 17, 5.70, "k-quant"),
    LlamaType("Q5_K_S", 16, 5.54, "k-quant"),
    LlamaType("Q5_0", 8, 5.5, "legacy"),
    LlamaType("Q4_1", 3, 5.0, "legacy"),
    LlamaType("Q4_K_M", 15, 4.89, "k-quant"),
    LlamaType("Q4_K_S", 14, 4.58, "k-quant"),
    LlamaType("Q4_0", 2, 4.5, "legacy"),
    LlamaType("IQ4_NL", 25, 4.50, "i-quant"),
    LlamaType("MXFP4_MOE", 38, 4.25, "fp4"),  # mixture-of-experts models' experts
    LlamaType("IQ4_XS", 30, 4.25, "i-quant"),
    LlamaType("Q3_K_L", 13, 4.27, "k-quant"),
    LlamaType("Q3_K_M", 12, 3.91, "k-quant"),
    LlamaType("IQ3_M", 27, 3.66, "i-quant"),
    LlamaType("Q3_K_S", 11, 3.44, "k-quant"),
    LlamaType("IQ3_S", 26, 3.44, "i-quant"),
    LlamaType("IQ3_XS", 22, 3.30, "i-quant"),
    LlamaType("IQ3_XXS", 23, 3.06, "i-quant", needs_imatrix=True),
    LlamaType("Q2_K", 10, 2.96, "k-quant"),
    LlamaType("Q2_K_S", 21, 2.79, "k-quant", needs_imatrix=True),
    LlamaType("IQ2_M", 29, 2.70, "i-quant", needs_imatrix=True),
    LlamaType("IQ2_S", 28, 2.50, "i-quant", needs_imatrix=True),
    LlamaType("IQ2_XS", 20, 2.31, "i-quant", needs_imatrix=True),
    LlamaType("Q2_0", 41, 2.25, "legacy"),
    LlamaType("IQ2_XXS", 19, 2.06, "i-quant", needs_imatrix=True),
    LlamaType("TQ2_0", 37, 2.06, "ternary"),
    LlamaType("IQ1_M", 31, 1.75, "i-quant", needs_imatrix=True),
    LlamaType("TQ1_0", 36, 1.69, "ternary"),
    LlamaType("IQ1_S", 24, 1.56, "i-quant", needs_imatrix=True),
    LlamaType("Q1_0", 40, 1.125, "legacy"),  # rows must be a multiple of 128 wide
)
#: Exposed by llama-cpp-python 0.3.36 but refused by its quantizer ("invalid output
#: file type"), so not offered.
NOT_QUANTIZABLE = {"NVFP4": 39}
BY_NAME = {t.name: t for t in LLAMA_TYPES}
BY_FTYPE = {t.ftype: t for t in LLAMA_TYPES}


def llama_type(name: str) -> LlamaType:
    """The type called `name` (any case); a one-line error naming the choices if none is."""
    found = BY_NAME.get(name.upper())
    if found is None:
        raise UserError(f"Unknown quantization type {name!r}: choose one of "
                        f"{', '.join(t.name for t in LLAMA_TYPES)}.")
    return found
