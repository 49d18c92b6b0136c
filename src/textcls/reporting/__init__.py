"""Reporting: metrics, explanations, figures and the HTML pages made from them.

It works from arrays, records and values: it never loads a model or decides what a family can
do. All matplotlib lives in `plots`. It imports only `data/` and the foundation modules, so the
families below can build explanations and score epochs with it.
"""
