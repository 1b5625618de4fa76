"""Run the GGUF fuzz corpus through inspect and import; print a JSON summary.

Run as a subprocess (`python -m tests.support.fuzz_gguf MODEL COUNT WORKDIR`) so a
native crash or hang shows up as a failed process, and so we can prove that
llama_cpp was never imported.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Literal


def run(model: Path, count: int, workdir: Path) -> dict[str, object]:
    os.environ["MACLLM_HOME"] = str(workdir / "home")
    from macllm_app.core.errors import ModelFileError
    from macllm_app.core.library import commands
    from tests.support.gguf_corpus import FieldMap, WorkingFile, mutations

    fmap = FieldMap.of(model)
    work = WorkingFile(fmap, workdir / "mutant.gguf")
    verdicts: Counter[str] = Counter()
    problems: list[str] = []
    slowest = 0.0
    copies = 0
    for i, mut in enumerate(mutations(fmap, count)):
        work.apply(mut)
        start = time.perf_counter()
        outcomes: list[str] = []
        for step in ("inspect", "import"):
            try:
                if step == "inspect":
                    commands.inspect(str(work.path))
                else:
                    copy = copies < 3 and outcomes == ["valid"]
                    mode: Literal["link", "copy"] = "copy" if copy else "link"
                    entry = commands.import_models([str(work.path)], mode=mode)[0]
                    if entry.get("error"):
                        raise ModelFileError(str(entry["error"]))
                    if mode == "copy":
                        copies += 1
                        Path(str(entry["path"])).unlink()
                outcomes.append("valid")
            except ModelFileError as exc:
                msg = str(exc)
                if "\n" in msg or not msg.startswith(("mutant.gguf:", str(work.path))):
                    problems.append(f"{i} {mut.kind} {step}: unclear message {msg!r}")
                outcomes.append("error")
            except Exception as exc:  # a crash: anything but a ModelFileError
                problems.append(f"{i} {mut.kind} {step}: {type(exc).__name__}: {exc}")
                outcomes.append("crash")
        slowest = max(slowest, time.perf_counter() - start)
        if len(set(outcomes)) != 1:
            problems.append(f"{i} {mut.kind}: inspect and import disagree {outcomes}")
        verdicts[f"{outcomes[0]}"] += 1
        verdicts[f"{mut.kind.split(':')[0]}:{outcomes[0]}"] += 1
        work.undo(mut)
    return {
        "count": count,
        "verdicts": dict(verdicts),
        "problems": problems[:50],
        "n_problems": len(problems),
        "slowest_s": round(slowest, 3),
        "copies": copies,
        "llama_cpp_imported": "llama_cpp" in sys.modules,
    }


if __name__ == "__main__":
    result = run(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps(result))
