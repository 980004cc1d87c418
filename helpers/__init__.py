"""Shared modules of the multiobjective pruning reproduction package."""
