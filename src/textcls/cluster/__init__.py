"""Cluster: work beyond one process on Ray and Optuna — batch inference over Ray Data, and
hyper-parameter search (`textcls tune`, Optuna locally, Ray Tune on a cluster).

Ray and Optuna are the engines; this package only puts a run folder and the families behind them.
Both sit behind the `cluster` extra (`pip install "textcls[cluster]"`) and are imported on first use.
"""
