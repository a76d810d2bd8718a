"""Atari 100k: data-efficient Rainbow (DER, van Hasselt et al. 2019) on the benchmark's 26 games, beside
SB3's DQN on the same budget and network and beside the published per-game scores.

Three modes:

- run (default): train the grid, then export and table it. The runs are a grid of
  ``python -m rainbow_ext.ablate`` (an Optuna study in ``--folder``); a rerun keeps finished runs and, with
  ``--checkpoint-freq``, continues killed ones from their checkpoints. Several copies of the same command
  (or one with ``--jobs N``) share the grid's runs.
- ``--export``: write each finished run of the grid's study to ``--results`` (one JSON of scores and wall
  times, and its training games as CSV), nothing trained; a file of another run of the same game, algo
  and seed (from another grid) is kept, not overwritten.
- ``--table``: read ``--results`` alone (the committed files) and print the per-game table and the
  aggregates; write them to ``table.md`` and draw the performance profile and the training curves beside
  the files; with ``--benchmarks FILE`` (BENCHMARKS.md) also replace the file's block between
  ``<!-- atari100k-table -->`` and ``<!-- /atari100k-table -->`` with them.

Each run trains for 100k agent steps (400k frames) on SB3's Atari path (no sticky actions, a life loss ends
the agent's episode, rewards clipped, games capped at 108k frames):

- a preset (default ``rainbow``): ``zoo_configs/rainbow_der.yml``'s ``atari`` entry, DER as published
  (its own encoder, 256 hidden units, n = 20);
- ``sb3-dqn``: ``stable_baselines3.DQN`` with ``benchmarks/configs/sb3_dqn_der.yml``, the same schedule and
  network without Rainbow's components (epsilon 1 -> 0.01 over the first 2,500 steps).

After training each run plays ``--eval-episodes`` whole games (a life loss does not end one) with the noise
off and epsilon 0 (SB3's deterministic ``predict``) on an env seeded apart from training, ``--n-eval-envs``
games at a time, each cut at 27,000 agent steps (108k frames). Scores are raw game scores; the
human-normalized score is ``(score - random) / (human - random)`` with the scores of
``rainbow_ext/data/atari_human_random.csv``. The aggregates are the median, mean and interquartile mean
(IQM) over games of the per-game mean normalized score, each with a 95% stratified-bootstrap interval
(runs resampled within each game; Agarwal et al. 2021), beside the published agents' aggregates over the
same games from ``rainbow_ext/data/atari100k_published.csv``.

    python benchmarks/learning/atari100k.py --jobs 2                               # the 26 games, seed 0, on 2 cores
    python benchmarks/learning/atari100k.py --algos sb3-dqn --games Boxing Breakout Freeway Pong RoadRunner \\
        --folder logs/benchmarks/atari100k-dqn
    python benchmarks/learning/atari100k.py --export                               # finished runs -> --results
    python benchmarks/learning/atari100k.py --table                                # the table, from --results alone
    python benchmarks/learning/atari100k.py --games Breakout --first-seed 1 --folder logs/benchmarks/atari100k-s1
    python benchmarks/learning/atari100k.py --games Breakout --folder logs/benchmarks/atari100k-bf16 \
        --results benchmarks/results/atari100k-bf16 \
        -params "policy_kwargs:dict(features_extractor_class='DataEfficientTrunk', \
                 features_extractor_kwargs=dict(bfloat16=True), net_arch=[256])"    # the bfloat16 trunk
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from rainbow_ext.envs.atari import atari_rom
from rainbow_ext.presets import PRESETS
from rainbow_ext.zoo import runs
from rainbow_ext.zoo.ablation import make_grid, prepare, run_ablation, storage_url
from rainbow_ext.zoo.config import CONFIG_DIR
from rainbow_ext.zoo.errors import UsageError
from rainbow_ext.zoo.stats import (
    atari100k_published,
    atari_human_random,
    human_normalized,
    iqm,
    performance_profile,
    stratified_bootstrap_ci_ragged,
    trailing_mean,
)

GAMES = [
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout", "ChopperCommand",
    "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero", "Jamesbond", "Kangaroo", "Krull",
    "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert", "RoadRunner", "Seaquest", "UpNDown",
]  # fmt: skip
DER_CONFIG = CONFIG_DIR / "rainbow_der.yml"
SB3_DQN_DER_CONFIG = Path(__file__).parents[1] / "configs" / "sb3_dqn_der.yml"
RESULTS = Path(__file__).parents[1] / "results" / "atari100k"
FRAMES_PER_STEP = 4
WINDOW = 10  # training games per point of the curves
# Published agents tabled beside rainbow_ext, and the aggregates their sources print over all 26 games
TABLE_HEADER = (
    "# Atari 100k on the CPU\n\nWritten by `python benchmarks/learning/atari100k.py --table` (BENCHMARKS.md).\n\n"
)
REFERENCES = ("DER (paper)", "DER (Dopamine)", "SPR", "DrQ(eps)")
PUBLISHED_AGGREGATES = {
    "DER (paper)": "median 0.161, mean 0.285 (van Hasselt et al. 2019)",
    "DER (Dopamine)": "IQM 0.183, median 0.189, mean 0.350 (rliable, 100 runs a game; IQM over runs)",
}


BLOCK = ("<!-- atari100k-table -->", "<!-- /atari100k-table -->")


def replace_block(document: Path, text: str, results: Path) -> None:
    """Put ``text`` between the document's two BLOCK markers, its image links made relative to the
    document's folder; an error names a missing marker."""
    content = document.read_text()
    start, end = (content.find(marker) for marker in BLOCK)
    if start < 0 or end < start:
        raise SystemExit(f"{document} has no block {BLOCK[0]} ... {BLOCK[1]} to replace")
    prefix = os.path.relpath(results.resolve(), document.resolve().parent)
    for image in ("profile.png", "curves.png"):
        text = text.replace(f"]({image})", f"]({prefix}/{image})")
    updated = content[: start + len(BLOCK[0])] + "\n" + text + "\n" + content[end:]
    runs.write_atomically(document, lambda tmp: tmp.write_text(updated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=GAMES)
    parser.add_argument("--algos", nargs="+", default=["rainbow"], help="presets and sb3-dqn")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (a larger N grows the grid)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds S..S+N-1 instead (a second seed elsewhere)")
    parser.add_argument(
        "-params", "--hyperparams", nargs="+", default=[], metavar="KEY:VALUE",
        help="for every run, as train's -params (give such a grid its own --folder and --results)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="agent steps (default: the config's 100k)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--n-eval-envs", type=int, default=10, help="evaluation games played at a time")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one per core on a CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--checkpoint-freq", type=int, default=25_000, help="a resumable checkpoint every N steps")
    parser.add_argument("--folder", default="logs/benchmarks/atari100k", help="the grid's folder and study")
    parser.add_argument("--results", default=str(RESULTS), help="the exported result files")
    parser.add_argument(
        "--export", action="store_true", help="write the grid's finished runs to --results (never over another run's)"
    )
    parser.add_argument("--table", action="store_true", help="table --results (no grid needed)")
    parser.add_argument("--benchmarks", help="with --table: the document (BENCHMARKS.md) whose table block to replace")
    parser.add_argument(
        "--missing", action="store_true", help="only the games that lack a result file in --results (a new folder)"
    )
    args = parser.parse_args()
    results = Path(args.results)
    if args.missing:
        budget = args.steps or 100_000
        done = {(r["algo"], r["game"], r["seed"]) for r in load_results(results) if r["agent_steps"] == budget}
        wanted = [
            (a, g, s)
            for a in args.algos
            for g in args.games
            for s in range(args.first_seed, args.first_seed + args.seeds)
        ]
        args.games = [g for g in args.games if any((a, g, s) not in done for a, g2, s in wanted if g2 == g)]
        if not args.games:
            print(f"every run has its result in {results}")
            return
        print(f"games without a result for every algo and seed: {', '.join(args.games)}")
    if args.table:
        text = table(results, args.steps or 100_000)
        print(text)
        if (results / "profile.png").exists():  # a table of results: kept beside them
            runs.write_atomically(results / "table.md", lambda tmp: tmp.write_text(TABLE_HEADER + text + "\n"))
        if args.benchmarks:
            replace_block(Path(args.benchmarks), text, results)
        return
    folder = Path(args.folder)
    if args.export:
        written = export(folder, results)
        print(f"{len(written)} run(s) in {results}: " + ", ".join(p.stem for p in written))
        return

    confs = {a: str(DER_CONFIG) for a in args.algos if a in PRESETS}
    confs.update({"sb3-dqn": str(SB3_DQN_DER_CONFIG)} if "sb3-dqn" in args.algos else {})
    steps = args.steps or 100_000
    envs = [f"ALE/{game}-v5" for game in args.games]
    try:
        grid, url, study = make_and_open(args, folder, confs, steps, envs)
    except (UsageError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    start = time.perf_counter()
    th.set_num_threads(args.threads)  # the runs of a single job train in this process
    status = run_ablation(grid, folder, url, study, jobs=args.jobs, threads=args.threads)
    print(f"{(time.perf_counter() - start) / 60:.1f} minutes")
    written = export(folder, results)
    print(f"{len(written)} run(s) in {results}")
    print(table(results, steps))
    if status != 0:
        raise SystemExit(status)


def make_and_open(
    args: argparse.Namespace, folder: Path, confs: dict[str, str], steps: int, envs: list[str]
) -> tuple[Any, str, Any]:
    """The grid (one evaluation, at the end of training), checked, and its study in ``folder``."""
    grid = make_grid(
        args.algos, envs, args.seeds, args.steps, steps, args.eval_episodes, args.hyperparams, confs,
        args.checkpoint_freq, n_eval_envs=args.n_eval_envs,
    )  # fmt: skip
    if args.first_seed < 0:
        raise UsageError(f"--first-seed must be >= 0, got {args.first_seed}")
    grid = dataclasses.replace(grid, seeds=[args.first_seed + s for s in grid.seeds])
    url, study = prepare(grid, folder, None, "atari100k")
    return grid, url, study


def export(folder: Path, results: Path) -> list[Path]:
    """One ``<Game>-<algo>-seed<N>.json`` (evaluation scores, game lengths, wall times) and
    ``...-episodes.csv`` (training games) per finished run of the grid in ``folder``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="atari100k", storage=storage_url(None, folder))
    grid = study.user_attrs["grid"]
    results.mkdir(parents=True, exist_ok=True)
    written = []
    for trial in study.get_trials(deepcopy=False):
        if "curve" not in trial.user_attrs:
            continue
        run_dir = Path(trial.user_attrs["run_dir"])
        game = trial.params["env"].removeprefix("ALE/").removesuffix("-v5")
        name = f"{game}-{trial.params['variant']}-seed{trial.params['seed']}"
        with np.load(run_dir / runs.EVALUATIONS_FILE) as data:
            scores, frames = data["results"][-1], data["ep_lengths"][-1]
            eval_seconds = float(data["seconds"][-1]) if "seconds" in data.files else None
        config = runs.read_yaml(run_dir / runs.CONFIG_FILE)
        seconds = float(trial.user_attrs["seconds"])
        record = {
            "game": game,
            "env": trial.params["env"],
            "algo": trial.params["variant"],
            "seed": trial.params["seed"],
            "agent_steps": config["n_timesteps"],
            "config": config["source"].split("/")[-1],
            "eval_games": len(scores),
            "eval_max_steps": config["eval_max_steps"],
            "eval_scores": [float(s) for s in scores],
            "eval_game_frames": [int(f) for f in frames],
            "eval_mean": float(np.mean(scores)),
            "eval_std": float(np.std(scores)),
            "human_normalized": float(human_normalized(atari_rom(trial.params["env"]), np.mean(scores))),
            "seconds": round(seconds, 1),  # training and evaluation, over every stretch of the run
            "eval_seconds": None if eval_seconds is None else round(eval_seconds, 1),
            "n_eval_envs": grid.get("n_eval_envs", 1),
            "finished": trial.datetime_complete.isoformat(timespec="seconds") if trial.datetime_complete else None,
            "hyperparams": config["hyperparams"],
        }
        path = results / f"{name}.json"
        if path.exists() and json.loads(path.read_text()).get("finished") != record["finished"]:
            print(f"kept {path}: it holds another run of {name} (finished {json.loads(path.read_text())['finished']})")
            continue
        runs.write_atomically(path, lambda tmp, r=record: tmp.write_text(json.dumps(r, indent=1) + "\n"))
        episodes = (run_dir / runs.EPISODES_FILE).read_text()
        runs.write_atomically(results / f"{name}-episodes.csv", lambda tmp, e=episodes: tmp.write_text(e))
        written.append(path)
    return sorted(written)


def load_results(results: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]


def table(results: Path, steps: int = 100_000) -> str:
    """Markdown: the per-game table, the aggregates beside the published ones, and the plots' paths, over
    the runs of ``steps`` agent steps in ``results``."""
    every = load_results(results)
    records = [r for r in every if r["agent_steps"] == steps]
    if not records:
        return f"no results of {steps:,} agent steps in {results}"
    published = atari100k_published()
    algos = sorted({r["algo"] for r in records}, key=lambda a: (a != "rainbow", a))
    by: dict[tuple[str, str], list[dict[str, Any]]] = {(r["algo"], r["game"]): [] for r in records}
    for r in sorted(records, key=lambda r: r["seed"]):
        by[(r["algo"], r["game"])].append(r)
    lines = [
        "| game | random | human | " + " | ".join(REFERENCES) + " | " + " | ".join(algos) + " |",
        "|---|---:|---:|" + "---:|" * (len(REFERENCES) + len(algos)),
    ]
    for game in [g for g in GAMES if any((a, g) in by for a in algos)]:
        random, human = atari_human_random()[published_rom(game)]
        cells = [fmt(published[agent][game]) for agent in REFERENCES]
        for algo in algos:
            rows = by.get((algo, game), [])
            means = [r["eval_mean"] for r in rows]
            spread = f" ± {fmt(np.std(means))}" if len(means) > 1 else ""
            cells.append(f"{fmt(np.mean(means))}{spread} ({len(means)})" if rows else "-")
        lines.append(f"| {game} | {fmt(random)} | {fmt(human)} | " + " | ".join(cells) + " |")
    lines.append("\nScores: each run's mean over its evaluation games; the mean ± std over seeds (seeds).")
    if len(every) > len(records):
        lines.append(f"({len(every) - len(records)} result file(s) of other budgets left out.)")
    for algo in algos:
        lines.append("\n" + aggregates(by, algo, published))
    lines.append(wall_times(records))
    profile, curves = profile_plot(by, algos, published, results), curves_plot(records, algos, steps, results)
    lines.append(f"\n![performance profile]({profile.name}) ![training curves]({curves.name})")
    return "\n".join(lines)


def label(by: dict[tuple[str, str], list[dict[str, Any]]], algo: str) -> str:
    configs = sorted({r["config"] for (a, _), rows in by.items() if a == algo for r in rows})
    return f"{algo} ({', '.join(configs)})"


def games_of(by: dict[tuple[str, str], list[dict[str, Any]]], algo: str) -> list[str]:
    return [g for g in GAMES if (algo, g) in by]


def fmt(value: float) -> str:
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def normalized_runs(by: dict[tuple[str, str], list[dict[str, Any]]], algo: str, games: list[str]) -> list[np.ndarray]:
    """Per game, the human-normalized scores of ``algo``'s runs."""
    return [np.array([r["human_normalized"] for r in by[(algo, game)]]) for game in games]


def aggregates(by: dict[tuple[str, str], list[dict[str, Any]]], algo: str, published: dict) -> str:
    """The median, mean and IQM over ``algo``'s games of the per-game mean normalized score, with 95%
    stratified-bootstrap intervals, and the published agents' values over the same games."""
    statistics = {"median": np.median, "mean": np.mean, "IQM": iqm}
    games = games_of(by, algo)
    header = f"Human-normalized, {label(by, algo)}, over its {len(games)} game(s)"
    header += "" if len(games) == len(GAMES) else f" of {len(GAMES)} (the published agents over the same games)"
    lines = [header + ":\n", "| agent | median | mean | IQM |", "|---|---|---|---|"]
    runs_per_game = normalized_runs(by, algo, games)
    cells = []
    for statistic in statistics.values():
        value, low, high = stratified_bootstrap_ci_ragged(runs_per_game, lambda means, s=statistic: s(means))
        cells.append(f"{value:.3f} [{low:.3f}, {high:.3f}]" if high > low else f"{value:.3f}")
    seeds = sorted({len(r) for r in runs_per_game})
    lines.append(f"| {algo} ({'-'.join(map(str, seeds))} seed(s) a game) | " + " | ".join(cells) + " |")
    for agent in REFERENCES:
        scores = np.array([human_normalized(published_rom(game), published[agent][game]) for game in games])
        lines.append(f"| {agent} | " + " | ".join(f"{s(scores):.3f}" for s in statistics.values()) + " |")
    lines.append("\nPublished over all 26 games: " + "; ".join(f"{a}: {t}" for a, t in PUBLISHED_AGGREGATES.items()))
    return "\n".join(lines)


def published_rom(game: str) -> str:
    return atari_rom(f"ALE/{game}-v5")


def wall_times(records: list[dict[str, Any]]) -> str:
    lines = ["\n| algo | runs | median wall time per run (min) | of which evaluation (median %) |", "|---|---|---|---|"]
    for algo in sorted({r["algo"] for r in records}):
        rows = [r for r in records if r["algo"] == algo]
        minutes = np.median([r["seconds"] for r in rows]) / 60
        shares = [r["eval_seconds"] / r["seconds"] for r in rows if r.get("eval_seconds")]
        share = f"{100 * np.median(shares):.0f}%" if shares else "-"
        lines.append(f"| {algo} | {len(rows)} | {minutes:.0f} | {share} |")
    return "\n".join(lines)


def profile_plot(by: dict[tuple[str, str], list[dict[str, Any]]], algos: list[str], published: dict, out: Path) -> Path:
    """Performance profiles (Agarwal et al. 2021): the fraction of games whose mean normalized score exceeds
    each threshold, for the first algo's games (rainbow's), its runs and the published agents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.linspace(0, 2, 201)
    fig, ax = plt.subplots(figsize=(6, 4))
    games = games_of(by, algos[0])
    ours = np.array([np.mean(r) for r in normalized_runs(by, algos[0], games)])
    ax.plot(thresholds, performance_profile(ours, thresholds), color="C0", lw=2, label=label(by, algos[0]))
    for color, agent in enumerate(REFERENCES, start=1):
        scores = np.array([human_normalized(published_rom(g), published[agent][g]) for g in games])
        ax.plot(thresholds, performance_profile(scores, thresholds), color=f"C{color}", label=agent)
    ax.set(xlabel="human-normalized score (tau)", ylabel="fraction of games > tau",
           title=f"Atari 100k, {len(games)} games")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    path = out / "profile.png"
    runs.write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def curves_plot(records: list[dict[str, Any]], algos: list[str], steps: int, out: Path) -> Path:
    """Each game's training score (the mean of the last 10 training games, whole games) against frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = [g for g in GAMES if any(r["game"] == g for r in records)]
    columns = min(len(games), 6)
    rows = -(-len(games) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    at = np.linspace(steps / 50, steps, 50)
    for ax, game in zip(axes.flat, games, strict=False):
        for color, algo in enumerate(algos):
            for r in (r for r in records if r["game"] == game and r["algo"] == algo):
                path = out / f"{game}-{algo}-seed{r['seed']}-episodes.csv"
                if len(path.read_text().splitlines()) > 1:  # a header, then one line per training game
                    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
                    curve = trailing_mean(data[:, 0], data[:, 1], at, WINDOW)
                    label = algo if r["seed"] == 0 else None
                    ax.plot(FRAMES_PER_STEP * at, curve, color=f"C{color}", lw=1, label=label)
        ax.set_title(game, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(games) :]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7)
    fig.supxlabel("emulator frames")
    fig.supylabel(f"training score (last {WINDOW} games)")
    fig.tight_layout()
    path = out / "curves.png"
    runs.write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
