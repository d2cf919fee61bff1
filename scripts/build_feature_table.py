"""Turn data/migraine_prediction.csv (the reviewable source) into data/migraine_prediction.xlsx."""

import argparse
import csv
import sys
from pathlib import Path

from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.feature_table import read_feature_table, write_feature_table_xlsx

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", default=ROOT / "data" / "migraine_prediction.csv", type=Path)
    p.add_argument("--out", default=ROOT / "data" / "migraine_prediction.xlsx", type=Path)
    p.add_argument(
        "--seed", type=int, default=0, help="accepted so every script takes --seed; the conversion is deterministic"
    )
    args = p.parse_args(argv)
    try:
        table = read_feature_table(args.csv)  # validate before writing anything
        with open(args.csv, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        for r in rows:  # numbers as numbers in the spreadsheet
            for k in r:
                if k.strip().lower() in ("weight", "mean", "std") and r[k].strip():
                    r[k] = float(r[k]) if "." in r[k] else int(r[k])
        write_feature_table_xlsx(rows, args.out)
        read_feature_table(args.out)
    except TfpAlineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({table.num_features} factors in {len(table.groups)} categories)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
