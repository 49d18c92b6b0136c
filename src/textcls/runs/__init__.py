"""Runs: writing and reading whole run folders — `train`, `load`, `score`, `evaluate`, the report,
compare, and masked-word pre-training.

The folder format itself is `textcls.runfolder`; this package puts the layers below together into
the jobs a user asks for.
"""
