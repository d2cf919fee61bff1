"""Ship a trained run: model.keras, config.yaml, validation.csv and its latest checkpoint into a small
run dir (e.g. models/psychometric), with a TRAINING.md that records the command, seed, epochs,
episodes and wall-clock hours that produced it and how to resume it.

    python scripts/package_run.py --run runs/psychometric-cpu --out models/psychometric \
        --command "tfp-aline train --config configs/psychometric-cpu.yaml --logdir runs/psychometric-cpu --seed 0"
"""

import argparse
import shutil
import sys
from pathlib import Path

import yaml

from tfp_aline import atomic
from tfp_aline.runs import CONFIG_FILE, MODEL_FILE

VALIDATION_FILE = "validation.csv"


def latest_checkpoint(run: Path):
    """(checkpoint prefix, epoch, training seconds) of the run's latest checkpoint."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    if latest is None:
        sys.exit(f"error: {run}/checkpoints holds no checkpoint")
    reader = tf.train.load_checkpoint(latest)
    names = {n for n, _ in tf.train.list_variables(latest)}
    seconds = next((float(reader.get_tensor(n)) for n in names if n.startswith("train_seconds")), float("nan"))
    return Path(latest), int(latest.rsplit("-", 1)[1]), seconds


def training_text(out: Path, command: str, cfg: dict, epoch: int, seconds: float, note: str) -> str:
    t, batch = cfg["training"], cfg["episodes"]["batch_size"]
    policy = max(epoch - t["warmup_epochs"], 0)
    return (
        f"# {out.name}\n\nTrained with:\n\n    {command}\n\n"
        f"Seed {cfg['seed']}; {epoch} epochs reached of {t['epochs']} configured ({min(epoch, t['warmup_epochs'])} "
        f"warm-up, {policy} policy-gradient), batch {batch}, so {epoch * batch} simulated episodes, in "
        f"{seconds / 3600:.2f} hours of training epochs (wall-clock, one CPU core). {note}\n\n"
        f"Files: `{MODEL_FILE}` (Keras 3), `{CONFIG_FILE}` (the resolved config), `{VALIDATION_FILE}` (the gap "
        "to the exact posterior during training, by wall-clock hours), `checkpoints/` (the last checkpoint: "
        "weights, optimizer state, epoch and hours).\n\n"
        f"Evaluate without retraining: `tfp-aline evaluate --run {out}`.\n\n"
        f"Train longer (same step counter, optimizer state and logs; the cosine schedule is stretched to "
        f"the new end):\n\n    tfp-aline train --resume --logdir {out} --set training.epochs={2 * t['epochs']}\n"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the trained run dir")
    p.add_argument("--out", type=Path, required=True, help="where to put the shippable copy")
    p.add_argument("--command", required=True, help="the command that trained it (recorded in TRAINING.md)")
    p.add_argument("--note", default="", help="extra sentence for TRAINING.md")
    p.add_argument("--seed", type=int, default=0, help="accepted so every script takes --seed; nothing here is random")
    args = p.parse_args(argv)
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (args.run / name).exists():
            sys.exit(f"error: {args.run / name} not found")
    cfg = yaml.safe_load((args.run / CONFIG_FILE).read_text())
    prefix, epoch, seconds = latest_checkpoint(args.run)
    text = training_text(args.out, args.command, cfg, epoch, seconds, args.note)
    with atomic.atomic_dir(args.out) as tmp:
        for name in (MODEL_FILE, CONFIG_FILE, VALIDATION_FILE):
            if (args.run / name).exists():
                shutil.copy2(args.run / name, tmp / name)
        (tmp / "checkpoints").mkdir()
        for f in prefix.parent.glob(prefix.name + ".*"):
            shutil.copy2(f, tmp / "checkpoints" / f.name)
        (tmp / "checkpoints" / "checkpoint").write_text(
            f'model_checkpoint_path: "{prefix.name}"\nall_model_checkpoint_paths: "{prefix.name}"\n'
        )
        (tmp / "TRAINING.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
