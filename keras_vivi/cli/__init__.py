"""Command-line entry points (absl flags live only here)."""

__all__: list[str] = []  # its modules are imported by name
