"""Engines and the engine host process. Importing this package imports no engine."""
