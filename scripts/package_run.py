"""Copy a trained run's model.keras and config.yaml into a small shippable run dir (e.g. models/psychometric),
with a TRAINING.md that records the command, seed, epochs and episodes that produced it.

    python scripts/package_run.py --run runs/psychometric-cpu --out models/psychometric \
        --command "tfp-aline train --config configs/psychometric-cpu.yaml --logdir runs/psychometric-cpu --seed 0"
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfp_aline.runs import CONFIG_FILE, MODEL_FILE  # noqa: E402


def last_epoch(run: Path) -> int:
    """The epoch counter of the run's latest checkpoint (what training actually reached)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    if latest is None:
        return -1
    return int(tf.train.load_variable(latest, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--command", required=True, help="the exact training command, recorded verbatim")
    p.add_argument("--note", default="", help="a sentence on how training went (stopped early, wall time, ...)")
    p.add_argument("--seed", type=int, default=0, help="unused; every script takes --seed")
    args = p.parse_args(argv)
    import yaml

    for name in (MODEL_FILE, CONFIG_FILE):
        if not (args.run / name).exists():
            sys.exit(f"error: {args.run / name} not found")
    cfg = yaml.safe_load((args.run / CONFIG_FILE).read_text())
    epochs = last_epoch(args.run)
    batch = cfg["episodes"]["batch_size"]
    text = (f"# {args.out.name}\n\nTrained with:\n\n    {args.command}\n\n"
            f"Seed {cfg['seed']}; {epochs} epochs reached of {cfg['training']['epochs']} configured "
            f"({cfg['training']['warmup_epochs']} warm-up), batch {batch}, so {epochs * batch} simulated "
            f"episodes. {args.note}\n\nFiles: `{MODEL_FILE}` (Keras 3), `{CONFIG_FILE}` (the resolved "
            f"config). Evaluate without retraining: `tfp-aline evaluate --run {args.out}`.\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", dir=args.out.parent))
    for name in (MODEL_FILE, CONFIG_FILE):
        shutil.copy2(args.run / name, tmp / name)
    (tmp / "TRAINING.md").write_text(text)
    if args.out.exists():
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
