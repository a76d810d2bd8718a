"""SB3 ``VecEnv`` over ale-py's C++ vector env (``ale_py.AtariVectorEnv``).

ale-py steps its envs on C++ threads with the Atari preprocessing built in (grayscale, resize, frame
stack, max-pool over skipped frames, no-op starts, fire on reset), 1.5-2x faster than SB3's
DummyVecEnv or SubprocVecEnv of AtariWrapper'ed envs on the same cores. This adapter gives it SB3's
conventions:

- autoreset in the same step: ``dones`` is true at an episode's last step, the returned observation
  is the next episode's first, and ``infos[i]["terminal_observation"]`` holds the last one
  (ale-py's default resets on the next step instead);
- ``infos[i]["episode"] = {"r", "l", "t"}`` at the end of each game, as SB3's ``Monitor`` under
  ``AtariWrapper`` reports it: the unclipped score and the length in emulator frames (no-op starts
  included), so ``rollout/ep_rew_mean`` is the game score; rewards given to the agent are clipped to
  their sign when ``clip_reward`` (ale-py would clip before the score is known, so it is done here);
- ``infos[i]["TimeLimit.truncated"]`` when a game is cut at ``max_episode_frames``;
- life loss as an episode end for the agent (``episodic_life``, SB3's ``terminal_on_life_loss``)
  while the game goes on, so the score still covers every life. ale-py's own ``episodic_life``
  restarts the whole game at each life loss instead, so it is not used;
- FIRE after a life loss (``fire_on_life_loss``) in games whose action set has it: games such as
  Breakout wait for FIRE to serve again, and a greedy policy that prefers another action would stall
  there until the frame cap. SB3's ``AtariWrapper`` presses FIRE in the reset that follows a life
  loss (``FireResetEnv``); ale-py steps all its envs at once and cannot step one alone, so here the
  first action after a life loss is played as FIRE instead. To the agent that state is one where
  every action serves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from rainbow_ext.envs.resolve import atari_rom


class AleVecEnv(VecEnv):
    """``n_envs`` copies of one Atari game on ale-py's C++ threads, as an SB3 VecEnv.

    Observations are ``(n_envs, n_stack, screen_size, screen_size)`` uint8 (grayscale, channel-first),
    the layout of SB3's ``AtariWrapper`` + ``VecFrameStack`` + ``VecTransposeImage``. Options default to
    SB3's ``AtariWrapper``'s.

    :param game: ROM name (``"breakout"``); see :func:`~rainbow_ext.envs.atari_rom` for gymnasium ids
    :param n_stack: frames per observation
    :param noop_max: up to this many no-op actions at the start of each game
    :param frame_skip: emulator frames per agent step (max-pooled over the last two)
    :param episodic_life: a life loss ends the agent's episode (the game goes on)
    :param clip_reward: rewards given to the agent are their sign
    :param repeat_action_probability: sticky actions, per emulator frame (Machado et al. 2018: 0.25)
    :param full_action_space: all 18 actions rather than the game's minimal set
    :param max_episode_frames: games are truncated after this many emulator frames
    :param fire_reset: press FIRE at the start of games that need it
    :param fire_on_life_loss: play the first action after a life loss as FIRE, in games whose action
        set has FIRE (SB3's ``AtariWrapper`` presses it after a life loss too); off for the Machado
        et al. (2018) protocol
    :param num_threads: C++ threads (0: one per env, up to the number of cores)
    """

    def __init__(
        self,
        game: str,
        n_envs: int = 8,
        *,
        n_stack: int = 4,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int = 84,
        episodic_life: bool = True,
        clip_reward: bool = True,
        repeat_action_probability: float = 0.0,
        full_action_space: bool = False,
        max_episode_frames: int = 108_000,
        fire_reset: bool = True,
        fire_on_life_loss: bool = True,
        num_threads: int = 0,
    ) -> None:
        from ale_py import Action, AtariVectorEnv

        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if n_stack < 1:
            raise ValueError(f"n_stack must be >= 1, got {n_stack}")
        if not 0.0 <= repeat_action_probability <= 1.0:
            raise ValueError(f"repeat_action_probability must lie in [0, 1], got {repeat_action_probability!r}")
        self.game = atari_rom(game)
        self.n_stack = n_stack
        self.episodic_life = episodic_life
        self.clip_reward = clip_reward
        self.ale = AtariVectorEnv(
            self.game,
            n_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=max_episode_frames,
            repeat_action_probability=repeat_action_probability,
            full_action_space=full_action_space,
            autoreset_mode="SameStep",
            img_height=screen_size,
            img_width=screen_size,
            grayscale=True,
            stack_num=n_stack,
            frameskip=frame_skip,
            maxpool=True,
            noop_max=noop_max,
            episodic_life=False,
            reward_clipping=False,
            use_fire_reset=fire_reset,
        )
        observation_space = spaces.Box(0, 255, shape=(n_stack, screen_size, screen_size), dtype=np.uint8)
        self.render_mode = None  # read by VecEnv.__init__
        super().__init__(n_envs, observation_space, self.ale.single_action_space)
        self._actions = np.zeros(n_envs, dtype=np.int64)
        self._scores = np.zeros(n_envs, dtype=np.float64)
        self._episode_start = np.zeros(n_envs, dtype=np.int64)  # frame number at which each game began
        self._lives = np.zeros(n_envs, dtype=np.int64)
        action_set = list(self.ale.ale.get_action_set())
        fire = Action.FIRE
        # index of FIRE in the game's action set, or None when the game has no FIRE (or it is off)
        self.fire_action = action_set.index(fire) if fire_on_life_loss and fire in action_set else None
        self._fire_next = np.zeros(n_envs, dtype=bool)  # envs whose next action is played as FIRE
        self._t_start = time.time()

    def reset(self) -> VecEnvObs:
        seeds = None if all(seed is None for seed in self._seeds) else np.array(self._seeds, dtype=np.int64)
        obs, info = self.ale.reset(seed=seeds)
        self._reset_seeds()
        self._scores[:] = 0.0
        self._episode_start[:] = info["frame_number"] - info["episode_frame_number"]
        self._lives[:] = info["lives"]
        self._fire_next[:] = False
        self.reset_infos = [{"lives": int(lives)} for lives in info["lives"]]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions[:] = np.asarray(actions).reshape(self.num_envs)
        if self.fire_action is not None:
            self._actions[self._fire_next] = self.fire_action
        self.ale.send(self._actions)  # the C++ threads step while the caller goes on

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.ale.recv()
        order = info["env_id"]
        if not np.array_equal(order, np.arange(self.num_envs)):  # results come in env order, but do not rely on it
            rank = np.argsort(order)
            obs, rewards, terminated, truncated = obs[rank], rewards[rank], terminated[rank], truncated[rank]
            info = {key: value[rank] for key, value in info.items()}
        self._scores += rewards
        # After the same-step reset of games that ended: lives and frame counts of the new game.
        lives = info["lives"]
        episode_start = info["frame_number"] - info["episode_frame_number"]
        game_over = terminated | truncated
        life_lost = (lives < self._lives) & ~game_over
        self._fire_next = life_lost.copy()
        if not self.episodic_life:
            life_lost = np.zeros_like(game_over)
        dones = game_over | life_lost
        infos: list[dict[str, Any]] = [{"lives": int(n)} for n in lives]
        for i in np.flatnonzero(dones):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            # A finished game's last observation; after a life loss the game (and its stack) goes on.
            infos[i]["terminal_observation"] = info["final_obs"][i] if game_over[i] else obs[i].copy()
            if game_over[i]:
                elapsed = round(time.time() - self._t_start, 6)
                frames = int(episode_start[i] - self._episode_start[i])
                infos[i]["episode"] = {"r": float(self._scores[i]), "l": frames, "t": elapsed}
                self._scores[i] = 0.0
                self._episode_start[i] = episode_start[i]
        self._lives = lives.astype(np.int64)
        rewards = np.sign(rewards) if self.clip_reward else rewards
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.ale.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of the adapter (the envs live in C++ and have none of their own)."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"AleVecEnv envs run in C++ and have no attribute {attr_name!r} to set")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise AttributeError(f"AleVecEnv envs run in C++ and have no method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        # Episode statistics come in SB3's Monitor format, so evaluate_policy may rely on them.
        return [issubclass(Monitor, wrapper_class) for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("AleVecEnv does not render; use make_atari_vec_env(vec_env='dummy') to record videos")
