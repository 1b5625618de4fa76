"""Rebuild a model from `dump_gguf_layout.py` JSON with random F16/F32 weights.

Speed does not depend on the weights' values; quantize the result with
`llama-quantize OUT Q4_1-OUT Q4_1` to match the default model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gguf
import numpy as np

SKIP = {"general.file_type", "general.quantization_version"}


def main(layout_path: Path, out: Path) -> None:
    layout = json.loads(layout_path.read_text())
    arch = next(f["value"] for f in layout["fields"] if f["key"] == "general.architecture")
    writer = gguf.GGUFWriter(str(out), arch)
    for field in layout["fields"]:
        key, types, value = field["key"], field["types"], field["value"]
        if key in SKIP or key == "general.architecture":
            continue
        vtype = gguf.GGUFValueType(types[0])
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, value, vtype, sub_type=gguf.GGUFValueType(types[1]))
        else:
            writer.add_key_value(key, value, vtype)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    rng = np.random.default_rng(0)
    for tensor in layout["tensors"]:
        shape = list(reversed(tensor["shape"]))  # GGUF lists dims innermost first
        if len(shape) == 1:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        writer.add_tensor(tensor["name"], data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
