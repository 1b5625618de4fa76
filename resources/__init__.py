"""MacLLM's resources, installed as the package `macllm_app.resources` (see pyproject's
`package-dir`): read them with `macllm_app.core.resources`, in a checkout and in a
bundle alike."""
