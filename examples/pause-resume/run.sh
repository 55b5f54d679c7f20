#!/bin/sh
# Pause and resume, twice over the same training loop (train.py):
#   ASHA: trials pause at the rungs (epochs 1, 3, 9); the best of each rung resume from their
#         checkpoints, up to 27 epochs.
#   PBT:  4 members train in turns on 2 slots; every 3 epochs the worst continues from the best
#         one's checkpoint with perturbed parameters (a new trial, linked to its parent).
#
#   sh examples/pause-resume/run.sh [OUT_DIR]    (FERROTUNE=path/to/ferrotune picks the binary)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-ferrotune-pause-resume}
ferrotune=${FERROTUNE:-ferrotune}
mkdir -p "$out"
storage="sqlite:///$out/studies.db"

tune() {
    study=$1
    shift
    "$ferrotune" run --study "$study" --storage "$storage" --space "$here/space.toml" \
        --direction minimize --metric val_loss --sampler random --seed 7 --jobs 2 \
        --workdir "$out/runs-$study" --checkpoint-dir "$out/checkpoints" "$@" \
        -- python3 "$here/train.py"
    "$ferrotune" best --study "$study" --storage "$storage"
}

tune sgd-asha --scheduler asha --min-resource 1 --max-resource 27 --eta 3 --trials 30
tune sgd-pbt --scheduler pbt --population 4 --interval 3 --max-step 18
