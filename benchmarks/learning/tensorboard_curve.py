"""The score curve of runs that never finished, from their TensorBoard logs: SB3's ``rollout/ep_rew_mean``
(the mean return of the last 100 training episodes, the score of ``minatar_curves.py``) every ``--every``
steps, as CSV, and its mean ± std over seeds at the given steps.

    python benchmarks/learning/tensorboard_curve.py /tmp/minatar-beyond/runs/rainbow-iqn \\
        --out benchmarks/results/minatar/rainbow-iqn-unfinished-h200.csv --at 300000 375000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAG = "rollout/ep_rew_mean"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", help="a grid's runs/<algo> folder: <env>/seed_<n>/tensorboard/*/events.*")
    parser.add_argument("--out", required=True)
    parser.add_argument("--every", type=int, default=25_000)
    parser.add_argument("--at", type=int, nargs="*", default=[], help="steps to print mean ± std over seeds at")
    args = parser.parse_args()
    rows, curves = ["game,seed,step,mean_return_last_100_episodes"], {}
    for events in sorted(Path(args.runs).glob("*/seed_*/tensorboard/*/events.*")):
        game = events.parts[-5].removeprefix("MinAtar-").removesuffix("-v1")
        seed = int(events.parts[-4].removeprefix("seed_"))
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        scalars = accumulator.Scalars(TAG)
        steps, values = np.array([s.step for s in scalars]), np.array([s.value for s in scalars])
        curves[(game, seed)] = (steps, values)
        for mark in [*range(args.every, int(steps[-1]) + 1, args.every), int(steps[-1])]:
            i = np.searchsorted(steps, mark, side="right") - 1  # the last value logged by that step
            rows.append(f"{game},{seed},{steps[i]},{values[i]:.2f}")
    Path(args.out).write_text("\n".join(rows) + "\n")
    for game in sorted({g for g, _ in curves}):
        for mark in args.at:
            scores = [v[np.searchsorted(s, mark, side="right") - 1] for (g, _), (s, v) in curves.items() if g == game]
            print(f"{game} at {mark:,}: {np.mean(scores):.2f} ± {np.std(scores):.2f} over {len(scores)} seeds")


if __name__ == "__main__":
    main()
