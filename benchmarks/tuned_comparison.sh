#!/usr/bin/env bash
# The tuned comparison on the emoji benchmark (issue 23; docs/results.md, "Tuned comparison").
#
#   bash benchmarks/tuned_comparison.sh OUT ROUNDS...      e.g. OUT=runs/tuned_emoji, ROUNDS = 6 12 20
#
# Every loss is tuned in rounds (round-robin, so that a stopped study leaves every loss equally
# tuned): `ranklist tune` with --trials R for each R in ROUNDS, on the same reduced budget
# (64 px, 100 iterations, 2 class-disjoint folds of the 797 training classes), then each loss's
# best.yaml, and RLL's untuned recipe, are trained on all training classes with 5 seeds and tested
# once (`compare-tuned`, paired against tuned RLL and against untuned RLL).
# Re-running continues: finished trials and finished seeds are not run again. The base is the demo
# recipe of the checkout: the stored study (docs/studies/tuned_emoji) was made, and continued to 20
# trials, with the code of f4fa8ab, before the demo was tuned (lr 4e-4, heads at 5x); a study now
# refuses another recipe content, so continue that one from a checkout of f4fa8ab, whose own copy of
# this script lacks the untuned reference (its two compare-tuned lines below were run by hand).
set -euo pipefail
out=${1:?usage: tuned_comparison.sh OUT ROUNDS...}
shift
rounds=("${@:-6}")
budget=(data.image_size=64 train.iterations=100 train.tensorboard=false)
declare -A loss_overrides=(
  [rll]=""
  [pml_ranked_list]="loss.name=pml_ranked_list loss.preset=null"
  [multi_similarity]="loss.name=multi_similarity loss.preset=null"
  [contrastive]="loss.name=contrastive loss.preset=null"
  [triplet_semihard]="loss.name=triplet_semihard loss.preset=null"
)
losses=(rll pml_ranked_list multi_similarity contrastive triplet_semihard)
for trials in "${rounds[@]}"; do
  for loss in "${losses[@]}"; do
    # shellcheck disable=SC2086  # the overrides are separate words on purpose
    python -m ranklist tune configs/demo.yaml "${budget[@]}" ${loss_overrides[$loss]} \
      --space "configs/spaces/$loss.yaml" --trials "$trials" --folds 2 --out "$out/$loss" --no-progress
  done
done
# The untuned reference: the same recipe with RLL at the paper's preset, nothing searched.
mkdir -p "$out/rll_untuned"
python - "$out/rll_untuned/best.yaml" "${budget[@]}" <<'PY'
import sys
from ranklist.atomic import atomic_write_text
from ranklist.training.config import config_to_yaml, load_config
config = load_config("configs/demo.yaml", [*sys.argv[2:], "loss.preset=default", "name=demo-untuned"])
atomic_write_text(sys.argv[1], "# The untuned reference: the demo recipe at the study budget.\n" + config_to_yaml(config))
PY
folders=("$out/rll" "$out/rll_untuned")
for loss in "${losses[@]:1}"; do folders+=("$out/$loss"); done
python -m ranklist compare-tuned "${folders[@]}" --seeds 0 1 2 3 4 --out "$out/compare" --no-progress
# The same runs (reused), each paired against the untuned reference.
python -m ranklist compare-tuned "${folders[@]}" --seeds 0 1 2 3 4 --reference rll_untuned \
  --out "$out/compare_untuned_reference" --no-progress
