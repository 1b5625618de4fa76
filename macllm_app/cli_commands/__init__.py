"""Handlers for `macllm` subcommands; each module holds one command group."""
