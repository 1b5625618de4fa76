"""`python -m macllm_app.cli` runs the `macllm` command."""

import sys

from macllm_app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
