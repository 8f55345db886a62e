#!/usr/bin/env bash
# Rebuild the bundled demo ensemble (resources/models/demo) from scratch, on the CPU or a GPU.
# Three members as in the paper's challenge entry: FPSM; FPSM with the synthetic-image encoding;
# FPSM fine-tuned on DADAM output. Everything is simulated (fpsm sim): the models know nothing of
# real radiographs. Deterministic seeds; about an hour on two CPU cores.
#
#   bash train/make_demo.sh            # run from the repository root with the venv active
set -euo pipefail
export HF_HUB_OFFLINE=1

# 1. Simulated data: a training set, a held-out test set, and a box-annotated patch source.
fpsm sim --n 3000 --seed 0 --out data/sim --format png --size 256 --min-prevalence 0.05 --quiet
fpsm sim --n 600 --seed 1 --out data/sim_test --format png --size 256 --min-prevalence 0.05 --quiet
fpsm sim --n 600 --seed 2 --out data/sim_boxes --format dicom --size 512 --min-prevalence 0.1 --quiet

# 2. DADAM: cut lesion patches from the annotated set, grow every finding under 400 positives
#    (1,200 synthetic images at most) keeping the co-occurrence matrix, generate.
fpsm dadam import --library data/dadam_lib --boxes data/sim_boxes/boxes.csv --format fpsm \
    --images data/sim_boxes --dataset sim-seed2
fpsm dadam plan --labels data/sim/labels.csv --library data/dadam_lib --out data/dadam_plan.jsonl \
    --target 400 --budget 1200 --seed 0
fpsm dadam generate --plan data/dadam_plan.jsonl --library data/dadam_lib --images data/sim \
    --out data/dadam --base-boxes data/sim/boxes.csv --workers 1
fpsm dadam report --original data/sim/labels.csv --augmented data/dadam/labels.csv \
    --out data/dadam_report || true

# 3. The three members (configs in train/configs/demo_*.yaml).
fpsm train train/configs/demo_fpsm.yaml --workers 1
fpsm train train/configs/demo_fpsm_synthetic.yaml --workers 1
fpsm train train/configs/demo_fpsm_dadam.yaml --workers 1

# 4. The mean ensemble, scored against its members on the held-out simulated test set. Its
#    thresholds are the mean of the members' F1-optimal thresholds from their validation splits.
python -m train.ensemble --out runs/demo_ensemble --name "demo (simulated radiographs)" \
    --description "Demo: trained on simulated radiographs, not for clinical use." \
    --member runs/demo_fpsm/fpsm.json:FPSM \
    --member "runs/demo_fpsm_synthetic/fpsm_synthetic.json:FPSM + synthetic encoding" \
    --member "runs/demo_fpsm_dadam/fpsm_dadam.json:FPSM + DADAM" \
    --csv data/sim_test/labels.csv --format cxrlt --workers 1

# 5. Bundle: fp16 weights, marked as a demo, with the training logs.
python -m train.bundle_demo --ensemble runs/demo_ensemble --out resources/models/demo
