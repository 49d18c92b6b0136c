"""Inference: backends that run a trained run (torch, ONNX fp32, ONNX int8), the `auto` choice timed
on this machine, and the prediction records every output shares.

It never trains. It imports `models/` and the layers below.
"""
