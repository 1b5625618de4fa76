"""The Server pane: the local OpenAI- and Ollama-compatible API, switched on from the app."""
