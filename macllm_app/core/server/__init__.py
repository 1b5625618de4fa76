"""The local HTTP server: OpenAI- and Ollama-compatible, parallel, secure by default.

`app.LocalServer` is the entry point (`macllm serve` and the app's Server pane
both run it); `config.ServerConfig` says how it runs.
"""
