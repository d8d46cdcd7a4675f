#!/usr/bin/env bash
# One prepared session on a lent CUDA machine, in order of value; each part has its own time limit and log.
#   bash benchmarks/gpu_all.sh            (logs under $OUT, else ./gpu-out)
# 1. benchmarks/gpu_path.py: every preset a few steps on CUDA, the app's worker process, fast vs HF forward.
# 2. benchmarks/gpu.py: labcore vs TRL's GRPOTrainer on a SmolLM2-135M-shaped model in bf16.
# 3. the labcore-only tests, where `model.device = "auto"` now means CUDA in bf16 (not CI: CI has no GPU).
# Packages the machine lacks (TRL, datasets) may travel as wheels in .whl/ (see ../.library/device/README.md).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
timeout "${PATH_S:-180}" python3 benchmarks/gpu_path.py --steps 3 --out "$OUT/gpu_path.json" 2>&1 \
  | grep -v "Loading weights\|is_gradient_checkpointing\|warnings.warn" | tee "$OUT/gpu_path.md"
timeout "${BENCH_S:-180}" python3 benchmarks/gpu.py --steps 10 2>&1 \
  | grep -v "Loading weights\|is_gradient_checkpointing\|warnings.warn" | tee "$OUT/gpu_bench.md"
XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist is no declared dependency: serial without it
timeout "${TEST_S:-110}" python3 -m pytest -q --maxfail=20 -p no:cacheprovider $XDIST tests/test_trainer.py tests/test_step.py \
  tests/test_algorithms.py tests/test_micro_batch.py tests/test_fastpath.py tests/test_model.py tests/test_checkpoint.py \
  tests/test_trpo.py > "$OUT/pytest_cuda.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|Error" "$OUT/pytest_cuda.txt" | tail -30
