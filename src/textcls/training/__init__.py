"""Training: tokenisation into cached arrays, batch plans and data loaders, the device and its
precision, CPU speed-ups, checkpoints, losses, the throughput meter, the one hand-written epoch
loop every own-torch model uses (seq2seq included) and the Hugging Face `Trainer` set-up.

It knows no family by name and imports only `data/`, `reporting/` and the foundation modules.
"""
