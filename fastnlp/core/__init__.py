"""The base layer: what every other part of fastnlp builds on (Keras flavours, re-creating and
converting models, the lineage record, the registry, checks, measurement). It imports nothing above
it.
"""
