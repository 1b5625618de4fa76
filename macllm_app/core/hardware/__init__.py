"""Memory, processes and speed readings."""
