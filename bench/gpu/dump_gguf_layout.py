"""Write a GGUF's metadata and tensor layout (no weights) as JSON.

The default model (98 MB) is too big to send to the GPU machine; its layout
(about 2 MB) is enough to rebuild a random-weight model of the same shapes there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gguf


def layout(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(str(path))
    fields = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.value for t in field.types]
        fields.append({"key": key, "types": types, "value": field.contents()})
    tensors = [{"name": t.name, "shape": [int(d) for d in t.shape], "type": t.tensor_type.name}
               for t in reader.tensors]
    return {"fields": fields, "tensors": tensors}


if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.write_text(json.dumps(layout(src)))
    print(f"wrote {dst} ({dst.stat().st_size // 1024} KiB)")
