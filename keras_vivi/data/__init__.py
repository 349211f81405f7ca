"""Turning videos into training data and feeding it to the model."""
