"""The harness: the command line, the demo, the bench and what they report. Nothing in the library
imports it.
"""
