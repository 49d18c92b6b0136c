"""The model card of a run folder, `README.md`: written by `train` and `pretrain` into the work folder
before the run lands (see `textcls.reporting.card` for its text), and copied into a `--format hf` export.

Example:
    >>> print(card_text(Path("runs/agnews"))[:3])         # doctest: +SKIP
    ---
"""

from __future__ import annotations

import logging
from pathlib import Path

from textcls import runfolder
from textcls.files import read_json_object, write_text_atomic
from textcls.models.base import EXPORT_HF, family_class

log = logging.getLogger(__name__)

CARD_FILE = runfolder.CARD_FILE


def card_text(run_dir: Path, name: str | None = None) -> str:
    """The `README.md` of the run in `run_dir` (a finished or partial folder), named `name` (default: its own)."""
    from textcls.models.encoders import encoder_card_facts
    from textcls.reporting.card import CardFacts, model_card

    record = runfolder.read_record(run_dir)
    info = record.info
    settings = info.get("train_config") or info.get("pretrain_config") or {}
    classifier = info.get("family") != runfolder.PRETRAINING_FAMILY
    uses_encoder = not classifier or EXPORT_HF in family_class(info["family"]).capabilities
    encoder = encoder_card_facts(settings.get("model")) if uses_encoder else {}
    test_path = runfolder.eval_path(run_dir, "test")
    test_metrics = read_json_object(test_path) if classifier and test_path.is_file() else None
    facts = CardFacts(
        name=name or record.name,
        info=info,
        metrics=record.metrics,
        base_model=encoder.get("base_model"),
        license=encoder.get("license"),
        language=encoder.get("language"),
        test_metrics=test_metrics if test_metrics and test_metrics.get("split") == "test" else None,
        hf_export=classifier and uses_encoder,
    )
    return str(model_card(facts))


def write_model_card(work_dir: Path, name: str) -> None:
    """Write `README.md` into a run's work folder; a card that cannot be written costs a warning, not the run."""
    try:
        write_text_atomic(Path(work_dir) / CARD_FILE, card_text(Path(work_dir), name))
    except Exception as error:  # noqa: BLE001  # the trained model matters more than its card
        log.warning("no %s written for %s (%s); the run is complete without it", CARD_FILE, name, error)
