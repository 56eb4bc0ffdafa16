#!/usr/bin/env bash
# Rebuild the shipped demo model (docs/demo-model.md) from nothing but this repository:
# synthetic training studies, training with resources/configs/demo.yaml, export, and the
# "no match" calibration. About 45 minutes on 2 CPU cores.
#   installer/build_demo.sh [WORK_DIR]      (default: ./demo-build; resumes an interrupted run)
# The result goes to WORK_DIR/model; copy it over resources/models/demo to ship it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" ""
work="${1:-$ROOT/demo-build}"
mkdir -p "$work"
cd "$work"
[ -f train-studies/ground_truth.json ] || mama demo-data train-studies --studies 200 --seed 1000 --rows 1024
resume=()
[ -d run/checkpoints ] && resume=(--resume)
mama train --config "$ROOT/resources/configs/demo.yaml" --data train-studies --out run "${resume[@]}"
rm -rf model
mama export run model
[ -f calib-studies/ground_truth.json ] || mama demo-data calib-studies --studies 12 --seed 555 --rows 1024
# finding-free studies only: the threshold is what a finding sentence reaches on normal tissue
mama calibrate model calib-studies --labels calib-studies --what maps
# out-of-distribution statistics and temperatures, as docs/demo-model.md says (seeds 31, 32, 34)
[ -f ood-ref/ground_truth.json ] || mama demo-data ood-ref --studies 40 --seed 31 --rows 1024
[ -f ood-held/ground_truth.json ] || mama demo-data ood-held --studies 40 --seed 32 --rows 1024
mama calibrate model ood-ref --what ood --heldout ood-held
[ -f temp/ground_truth.json ] || mama demo-data temp --studies 40 --seed 34 --rows 1024
mama calibrate model temp --what temperature
echo "[mama] demo model written to $work/model"
