"""SB3's ``EvalCallback`` that also reports evaluation games which stalled, and writes its files whole.

SB3 writes ``evaluations.npz`` and ``best_model.zip`` in place, so a kill during a write leaves a
broken file and loses the previous one; here SB3 writes them to staging names and each is renamed over
the real one (one atomic step) after the evaluation.

A greedy policy can stand still in a state that only one action leaves, such as Breakout waiting for
FIRE after a life loss: every evaluation game then runs to the time limit with no reward, the
evaluation takes minutes and reports a score that looks like a bad policy. Such games are counted
(``eval/stalled_games``) and named in a warning. The wall time of each evaluation is saved beside the
scores (``seconds`` in ``evaluations.npz``).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import EvalCallback as SB3EvalCallback

from rainbow_ext.files import replace_durably


class StalledEvaluationWarning(UserWarning):
    """Evaluation games reached the time limit with no reward in their second half."""


class EvalCallback(SB3EvalCallback):
    """SB3's ``EvalCallback``, plus a count of the evaluation games that stalled.

    A game stalled when the time limit cut it (``TimeLimit.truncated``) and no reward came in its
    second half (in agent steps). Games are whole games: with SB3's ``Monitor`` info (Atari, both
    paths) a life loss does not end one. Each evaluation with stalled games records
    ``eval/stalled_games`` and warns once, with the likely causes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SB3 saves to log_path (``<folder>/evaluations.npz``) and best_model_save_path/best_model.zip:
        # point both at staging names, renamed over the real files after each evaluation
        self._final_files: list[tuple[str, str]] = []
        if self.log_path is not None:  # SB3's "<folder>/evaluations", to which numpy adds .npz
            final = self.log_path + ".npz"
            self.log_path = os.path.join(os.path.dirname(final), ".evaluations.partial.npz")
            self._final_files.append((self.log_path, final))
        self._staged_best: tuple[str, str] | None = None
        if self.best_model_save_path is not None:
            final = os.path.join(self.best_model_save_path, "best_model.zip")
            self.best_model_save_path = os.path.join(self.best_model_save_path, ".best_model.partial")
            self._staged_best = (os.path.join(self.best_model_save_path, "best_model.zip"), final)
        for staged, _ in [*self._final_files, *([self._staged_best] if self._staged_best else [])]:
            if os.path.exists(staged):  # left by a process killed mid-write: never to be promoted
                os.remove(staged)
        self.stalled_games = 0  # in the last evaluation
        self.evaluations_seconds: list[float] = []  # wall time of each evaluation, saved as ``seconds``
        self._game_steps = np.zeros(0, dtype=np.int64)
        self._last_reward_step = np.zeros(0, dtype=np.int64)
        self._games = 0
        self._stalled_lengths: list[int] = []

    def _on_step(self) -> bool:
        evaluating = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        if evaluating:
            n_envs = self.eval_env.num_envs
            self._game_steps = np.zeros(n_envs, dtype=np.int64)
            self._last_reward_step = np.zeros(n_envs, dtype=np.int64)
            self._games, self._stalled_lengths = 0, []
        best_before = self.best_mean_reward
        start = time.perf_counter()
        continue_training = super()._on_step()
        if evaluating:
            self.evaluations_seconds.append(time.perf_counter() - start)
            for staged, final in self._final_files:
                if os.path.exists(staged):
                    add_seconds(staged, self.evaluations_seconds)
                    replace_durably(staged, final)
            # SB3 wrote a best model only if this evaluation beat the best so far
            if self._staged_best is not None and self.best_mean_reward > best_before:
                replace_durably(*self._staged_best)
            self.stalled_games = len(self._stalled_lengths)
            if self.stalled_games:
                self.logger.record("eval/stalled_games", self.stalled_games)
                message = stall_message(self.stalled_games, self._games, max(self._stalled_lengths))
                warnings.warn(message, StalledEvaluationWarning, stacklevel=2)
        return continue_training

    def _on_training_end(self) -> None:
        super()._on_training_end()
        if self._staged_best is not None:  # SB3 made the staging folder; it holds a file only mid-save
            folder = os.path.dirname(self._staged_best[0])
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)

    def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        super()._log_success_callback(locals_, globals_)
        i, info = locals_["i"], locals_["info"]
        self._game_steps[i] += 1
        if locals_["reward"] != 0:
            self._last_reward_step[i] = self._game_steps[i]
        whole_game_over = "episode" in info if locals_.get("is_monitor_wrapped") else locals_["done"]
        if not (locals_["done"] and whole_game_over):
            return
        steps = int(self._game_steps[i])
        if info.get("TimeLimit.truncated", False) and self._last_reward_step[i] <= steps // 2:
            self._stalled_lengths.append(steps)
        self._games += 1
        self._game_steps[i] = 0
        self._last_reward_step[i] = 0


def add_seconds(path: str, seconds: list[float]) -> None:
    """Add the wall time of each evaluation (``seconds``, one per row of ``timesteps``) to SB3's npz file."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    if len(seconds) == len(arrays["timesteps"]):  # a history restored without times has none
        np.savez(path, **arrays, seconds=np.asarray(seconds, dtype=np.float64))


def stall_message(stalled: int, games: int, steps: int) -> str:
    return (
        f"{stalled} of {games} evaluation games reached the time limit (after {steps:,} agent steps) with "
        "no reward in their second half: the greedy policy is stuck in a state that only another action leaves. "
        "On Atari the usual cause is a game waiting for FIRE after a life loss (keep fire_on_life_loss on, the "
        "default of both paths); otherwise a policy that stands still. Cap evaluation games with --eval-max-steps "
        "(the eval_max_steps key) so a stall costs seconds, not the 30-minute game limit."
    )
