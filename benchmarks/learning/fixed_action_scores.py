"""Reference scores of policies that do not learn, on the Atari path the benchmarks train on (SB3's
``AtariWrapper`` through ``make_atari_vec_env``, the ``atari`` entries' env settings): uniform random
actions, and one action played throughout (Freeway's UP crosses the road without dodging).

Each game is whole (a life loss does not end it), scored raw, as the evaluations of ``atari100k.py``
and ``atari_curves.py`` are.

    python benchmarks/learning/fixed_action_scores.py --game Freeway --action UP --games 3
"""

from __future__ import annotations

import argparse

import numpy as np

from rainbow_ext.envs import make_atari_vec_env


def play(game: str, action: str | None, games: int, seed: int) -> list[float]:
    """Scores of ``games`` whole games with ``action`` (a name such as ``"UP"``) or, if None, random actions."""
    env = make_atari_vec_env(f"ALE/{game}-v5", 1, seed=seed, terminal_on_life_loss=True)
    meanings = env.envs[0].unwrapped.get_action_meanings()
    if action is not None and action not in meanings:
        raise SystemExit(f"{game} has no action {action!r}; its actions: {', '.join(meanings)}")
    rng = np.random.default_rng(seed)
    scores: list[float] = []
    env.reset()
    while len(scores) < games:
        index = meanings.index(action) if action is not None else int(rng.integers(len(meanings)))
        _, _, _, infos = env.step(np.array([index]))
        scores.extend(float(info["episode"]["r"]) for info in infos if "episode" in info)
    env.close()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="Freeway", help="ALE game name (ALE/<game>-v5)")
    parser.add_argument("--action", default=None, help="the action played throughout (default: random play only)")
    parser.add_argument("--games", type=int, default=3)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    if args.games < 1:
        parser.error("--games must be >= 1")
    for action in (None, args.action) if args.action else (None,):
        scores = play(args.game, action, args.games, args.seed)
        name = "random play" if action is None else f"always {action}"
        listed = ", ".join(f"{score:g}" for score in scores)
        print(f"{args.game}, {name}: mean {np.mean(scores):.1f} over {len(scores)} games ({listed})")


if __name__ == "__main__":
    main()
