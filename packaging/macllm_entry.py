"""The frozen app's one executable.

`MacLLM` opens the window (`MacLLM --self-test` runs the offscreen smoke test);
`MacLLM cli ...`, or the executable called as `macllm` (the Linux bundle's link),
runs the `macllm` command line. Engine hosts and jobs start from this same
executable: `freeze_support()` comes first, so a spawned child runs its target and
never opens a window.

`MACLLM_IMPORT_REPORT=DIR` makes every process of the app (children included)
write the files its modules came from to DIR/imports-PID.txt as it exits: the
bundle's smoke test checks that none came from the source tree.
"""

import atexit
import multiprocessing
import os
import sys
from pathlib import Path


def _report_imports(folder: str) -> None:
    files = sorted({str(getattr(module, "__file__", "") or "")
                    for module in list(sys.modules.values())} - {""})
    (Path(folder) / f"imports-{os.getpid()}.txt").write_text("\n".join(files) + "\n")


def main() -> int:
    report = os.environ.get("MACLLM_IMPORT_REPORT")
    if report:
        atexit.register(_report_imports, report)
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["cli"]:
        from macllm_app.cli import main as cli_main

        return cli_main(sys.argv[2:])
    if Path(sys.argv[0]).name == "macllm":
        from macllm_app.cli import main as cli_main

        return cli_main(sys.argv[1:])
    from macllm_app.ui.app import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
