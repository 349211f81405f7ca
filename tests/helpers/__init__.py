"""Helpers shared by several test modules (not fixtures: plain functions)."""
