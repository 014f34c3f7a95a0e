#!/usr/bin/env bash
# Short two-stage training + evaluation on one lent GPU (the numbers in README's results table).
# Expects build/gpu/ prepared as described in README ("Reproducing the GPU run"): wheels, the BSDS500 train
# split plus 10 val images, Set5/Set14 x4 HR images, and the VGG16/LPIPS weights.
set -euo pipefail
G=build/gpu
OUT=${OUT:-outputs/gpu_short}
mkdir -p "$OUT"
python3 -m pip install --quiet --no-deps --target /tmp/pylib $G/wheels/*.whl
export PYTHONPATH=$PWD/src:/tmp/pylib NO_ALBUMENTATIONS_UPDATE=1 ESRGAN_CACHE=/tmp/esrgan-cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
VGG=$G/weights/vgg16_imagenet_features.safetensors
HEADS=$G/weights/lpips_vgg_v0.1_heads.safetensors
RUN=/tmp/run
start=$(date +%s)
timeout "${TRAIN_LIMIT:-330}" python3 -m esrgan train configs/gpu_bsds500_short.yaml --run-dir $RUN --no-progress \
  data.root=$G/datasets perceptual_loss.weights=$VGG validation.lpips_vgg_weights=$VGG \
  validation.lpips_heads=$HEADS 2>&1 | grep -v "^\s*$" | tail -40 || echo "train exited with $?"
echo "train wall: $(( $(date +%s) - start )) s"
for m in pretrain_best interp_alpha0.8 gan_g_ema; do
  [ -f $RUN/weights/$m.safetensors ] || continue
  python3 -m esrgan test --model $RUN/weights/$m.safetensors --datasets set5,set14 --data-root $G/datasets \
    --out-dir /tmp/eval_$m --figures none --no-progress --lpips-vgg $VGG --lpips-heads $HEADS 2>&1 | tail -12
  cp /tmp/eval_$m/results.json "$OUT/results_$m.json"
done
cp $RUN/metrics.jsonl $RUN/config.yaml "$OUT/" || true
python3 -m esrgan plot $RUN -o "$OUT/curves.png" || true
python3 - "$RUN" "$OUT" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
run, out = sys.argv[1:]
for name in ("pretrain_best", "interp_alpha0.8"):
    path = f"{run}/weights/{name}.safetensors"
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata()
            sd = {k: f.get_tensor(k).half() for k in f.keys()}
    except FileNotFoundError:
        continue
    save_file(sd, f"{out}/{name}_fp16.safetensors", metadata=meta)
PY
ls -la "$OUT"
