"""textcls's benchmarks: scripts run from the repository root, as `python benchmarks/NAME.py` or
`python -m benchmarks.NAME`; what they share is in `benchmarks.harness` (flags, result header, timing,
reuse checks) and `benchmarks.bare_step` (the engine's training step alone)."""
