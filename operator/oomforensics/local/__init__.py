"""Local mode: watch one process on this machine with the operator's engine."""
