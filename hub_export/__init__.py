"""Exporters of keras_vivi backbones as TF-Hub SavedModels, and their consumer-side plug-ins."""
