"""`python -m macllm_app` opens the app (same as `macllm-app`)."""

import sys

from macllm_app.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
