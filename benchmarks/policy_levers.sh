#!/bin/bash
# One policy-phase lever at a time: resume models/location-finding from its checkpoint for the same
# wall clock each, at a constant learning rate of 1e-4, on one core, then evaluate under the paper's
# protocol (pool 2000, 1 random initial design, L = 1e6). Run from the repository root, by hand:
#   benchmarks/policy_levers.sh MINUTES none "" inference "--set training.inference_updates=1" ...
# Then: python benchmarks/policy_levers_table.py none inference ...   (runs in runs/levers/)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH=$ROOT
PY=${PY:-$ROOT/.venv/bin/python}
CORE=${CORE:-1}
MIN=$1; shift
BASE="--set training.epochs=20000 --set training.learning_rate=1e-4 --set training.lr_min_fraction=1.0 --set logging.validate_every=0"
while [ $# -ge 2 ]; do
  name=$1; sets=$2; shift 2
  R=runs/levers/lf-$name
  if [ ! -d $R ]; then
    mkdir -p $R && cp -r models/location-finding/{checkpoints,config.yaml,model.keras} $R/
  fi
  echo "== $name start $(date -u +%T)"
  timeout -s TERM $((MIN*60)) taskset -c $CORE $PY -m tfp_aline train --resume --logdir $R --no-eval --no-progress $BASE $sets > $R/train.log 2>&1
  ep=$(ls $R/checkpoints | grep -o 'ckpt-[0-9]*' | sed 's/ckpt-//' | sort -n | tail -1)
  echo "== $name stopped at epoch $ep $(date -u +%T)"
  taskset -c $CORE $PY -m tfp_aline train --resume --logdir $R --no-eval --no-progress $BASE $sets --set training.epochs=$ep >> $R/train.log 2>&1
  taskset -c $CORE $PY -m tfp_aline evaluate --run $R --methods policy random --episodes 500 --pool 2000 --initial-context 1 --horizon 29 --spce-samples 1000000 --seed 0 --no-exact --no-progress --out $R/eval-paper > $R/eval.log 2>&1
  echo "== $name evaluated $(date -u +%T)"
done
