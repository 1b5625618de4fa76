"""Prompt building for every engine: the chat template (sandboxed), the context
policy, prompt tokens and stop strings."""
