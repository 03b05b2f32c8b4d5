"""`python -m medseg_train.cards`: the committed model cards as a markdown table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medseg.models.loader import WEIGHTS_DIR

WEIGHTS = WEIGHTS_DIR  # the committed weights the server loads


def rows(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def table(cards: list[dict]) -> str:
    lines = ["| model | input | parameters | steps | wall time | device | Dice seen "
             "| Dice held-out |",
             "|---|---|---|---|---|---|---|---|"]
    for card in cards:
        train, metrics = card.get("training", {}), card.get("metrics", {})
        lines.append(
            f"| {card['name']} | {'x'.join(map(str, card['input_size']))} | "
            f"{card.get('network', {}).get('parameters', '-'):,} | {train.get('steps', '-')} | "
            f"{train.get('wall_time_s', 0) / 60:.0f} min | {train.get('device', '-')} | "
            f"{metrics.get('dice_seen', '-')} | {metrics.get('dice_held_out', '-')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=WEIGHTS)
    print(table(rows(parser.parse_args().dir)))


if __name__ == "__main__":
    main()
