"""Data-parallel training: the cluster, the distributed model and dataset, backups, and a local
launcher.
"""
