"""Facts about this machine and install that runs and benchmarks record: library versions, the
processor's name and feature flags, the platform.

Example:
    >>> cpu_model()                      # doctest: +SKIP
    'AMD EPYC 9R14'
"""

from __future__ import annotations

import os
import platform
from typing import Any


def library_versions() -> dict[str, str]:
    """Versions that decide whether a run folder can be reproduced."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("textcls", "torch", "transformers", "datasets", "accelerate", "scikit-learn", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def hardware() -> dict[str, Any]:
    """The machine a run was made on."""
    return {"platform": platform.platform(), "processor": cpu_model(), "cpus": os.cpu_count()}


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The processor's name ("AMD EPYC ...", "Intel(R) Xeon(R) ..."), or what the platform says
    (`platform.processor()` alone is empty on Linux)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The processor's feature flags (empty where /proc/cpuinfo is not available)."""
    return set((_cpuinfo_field("flags") or "").split())
