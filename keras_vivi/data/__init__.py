"""Turning videos into training data and feeding it to the model."""

__all__: list[str] = []  # its modules are imported by name
