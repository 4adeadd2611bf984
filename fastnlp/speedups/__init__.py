"""The speedups: model transforms that each return a new model, the training callbacks and tools that
measure them. They import the core, never the recipes or the harness.
"""
