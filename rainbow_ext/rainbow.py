"""Rainbow (Hessel et al. 2018) as a subclass of SB3's DQN, with every component switchable."""

from __future__ import annotations

import inspect
import io
import pathlib
import warnings
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, ReplayBufferSamples, Schedule

from rainbow_ext.arguments import (
    check_cuda_graphs,
    check_memory_option,
    check_munchausen,
    check_prioritized,
    check_replay_buffer_kwargs,
    merge_head_options,
)
from rainbow_ext.buffers.frame_storage import frame_stack_buffer
from rainbow_ext.buffers.n_step import end_stored_episodes
from rainbow_ext.distributional import ERROR_METRIC, DistributionalLoss
from rainbow_ext.domains import DOMAINS, check_values
from rainbow_ext.head_options import OPTION_NAMES, HeadOptions
from rainbow_ext.layers import built_noisy_weights
from rainbow_ext.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, RainbowPolicy, RainbowQNetwork
from rainbow_ext.presets import preset_flags
from rainbow_ext.replay import check_replay_fits, frames_to_store, replay_buffer_choice
from rainbow_ext.stepping import GradientSteps, clip_grad_norm, flushed_denormals

SelfRainbow = TypeVar("SelfRainbow", bound="Rainbow")

# What train logs, as running sums on the device: read once per log interval (dump_logs).
TRAIN_STATS = ("loss", "q_mean", "error")


def _head_option(name: str) -> property:
    return property(lambda self: getattr(self.head_options, name), doc=f"``{name}``, as passed to the policy")


class Rainbow(GradientSteps, DistributionalLoss, DQN):
    """
    Rainbow: Combining Improvements in Deep Reinforcement Learning (Hessel et al. 2018),
    https://arxiv.org/abs/1710.02298

    SB3's DQN with six components, each switched by its own argument: ``double_q``, ``dueling``,
    ``noisy``, ``distributional`` (C51, or a quantile head: QR-DQN, IQN), ``n_steps`` and ``prioritized``;
    and a seventh, ``munchausen``, from later work. With every component off
    (``n_steps=1``, Adam's default ``eps``) it is exactly SB3's DQN. Defaults are full Rainbow, with
    SB3 DQN's defaults for everything else. The arguments shared with DQN are documented there.
    (``replay_buffer_kwargs`` must not set ``n_steps`` or ``gamma``: Rainbow forwards its own.)

    :param n_steps: n-step returns (Sutton 1988; Rainbow uses 3) through SB3's ``NStepReplayBuffer``, or
        :class:`~rainbow_ext.buffers.DictNStepReplayBuffer` for Dict observations
    :param exploration_fraction: as DQN's; ``None`` means DQN's default (0.1)
    :param exploration_initial_eps: as DQN's; ``None`` means 1.0, or 0.0 when ``noisy``
    :param exploration_final_eps: as DQN's; ``None`` means 0.05, or 0.0 when ``noisy``. With noisy
        nets, epsilon-greedy is off unless one of the three exploration arguments is given.
    :param double_q: Double DQN targets (van Hasselt et al. 2016): the online network picks a*,
        the target network evaluates it
    :param dueling: dueling head (Wang et al. 2016), per atom when distributional
    :param noisy: factorised Gaussian NoisyLinear layers in the head (Fortunato et al. 2018)
    :param noisy_sigma0: initial noise scale of the noisy layers
    :param distributional: the return distribution the head learns: ``True`` or ``"c51"``, C51's categorical
        distribution with a cross-entropy loss (Bellemare et al. 2017); ``"qr"``, QR-DQN's N quantiles at
        fixed fractions (Dabney et al. 2018a); ``"iqn"``, IQN's quantiles at sampled fractions (Dabney et
        al. 2018b), both with the quantile Huber loss (kappa 1); ``False``: expected values, Huber loss
    :param n_atoms: number of C51 atoms
    :param v_min: smallest atom of the C51 support
    :param v_max: largest atom of the C51 support
    :param n_quantiles: QR-DQN's N (``None``: 200, sb3-contrib's default), or IQN's N = N' fractions
        sampled per sample for the loss (``None``: 64)
    :param n_acting_quantiles: IQN's K, fractions sampled to estimate Q-values when acting (32)
    :param cosine_embedding_dim: IQN's cosine features per fraction (64)
    :param munchausen: Munchausen RL (Vieillard et al. 2020, :mod:`rainbow_ext.munchausen`): the target of
        a softmax policy plus a scaled log-policy bonus; with ``distributional=False``, ``"qr"`` or
        ``"iqn"``. With ``double_q`` the online network's values define the softmax policy at s'.
    :param munchausen_tau: softmax temperature (entropy scale) tau
    :param munchausen_alpha: scale of the log-policy bonus
    :param munchausen_l0: lower clip of ``tau log pi``
    :param prioritized: prioritized experience replay (Schaul et al. 2016) through
        :class:`~rainbow_ext.buffers.PrioritizedReplayBuffer` (``PrioritizedDictReplayBuffer`` for Dict
        observations): importance-weighted losses, priorities
        from the per-sample loss (C51 cross-entropy, else |TD error|)
    :param per_alpha: prioritization exponent
    :param per_beta0: importance-sampling exponent at the start; it grows linearly to 1 over the run
    :param per_eps: added to priorities so that every transition can be sampled
    :param frame_storage: store each frame of frame-stacked image observations once
        (:class:`~rainbow_ext.buffers.FrameStackStorage`, about 7 KB instead of 56 KB per Atari
        transition). ``None`` (default): on when the env stacks frames (``VecFrameStack``, or
        :class:`~rainbow_ext.envs.AleVecEnv`) and ``optimize_memory_usage`` is off; ``True``: on, an
        error when the env stacks no image frames; ``False``: off.
    :param cuda_graphs: run each gradient step, and acting, as a replayed CUDA graph (see
        :mod:`rainbow_ext.cuda_graphs`). ``None`` (default): on when the model is on a CUDA device;
        ``True``: on, an error without CUDA; ``False``: eager, as SB3.
    :param flush_denormal: during ``learn``, treat subnormal floats (below 1.2e-38) as zero on the CPU
        (``torch.set_flush_denormal``; for the thread that calls ``learn``, as it was again after). Adam's
        moment estimates of weights whose gradient stays zero (dead ReLU units) decay into the subnormal
        range, where the CPU computes each operation on them many times slower: on Atari, a long CPU run
        slows down by about a third without it. Off by default, which keeps every result bit for bit as in
        SB3; the data-efficient Atari entry (``zoo_configs/rainbow_der.yml``) turns it on.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    q_net: RainbowQNetwork
    q_net_target: RainbowQNetwork
    policy: RainbowPolicy

    def __init__(
        self,
        policy: str | type[RainbowPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        replay_buffer_class: type | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 3,
        target_update_interval: int = 10000,
        exploration_fraction: float | None = None,
        exploration_initial_eps: float | None = None,
        exploration_final_eps: float | None = None,
        max_grad_norm: float = 10,
        double_q: bool = True,
        dueling: bool = True,
        noisy: bool = True,
        noisy_sigma0: float = 0.5,
        distributional: bool | str = True,
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        n_quantiles: int | None = None,
        n_acting_quantiles: int = 32,
        cosine_embedding_dim: int = 64,
        munchausen: bool = False,
        munchausen_tau: float = 0.03,
        munchausen_alpha: float = 0.9,
        munchausen_l0: float = -1.0,
        prioritized: bool = True,
        per_alpha: float = 0.5,
        per_beta0: float = 0.4,
        per_eps: float = 1e-6,
        frame_storage: bool | None = None,
        cuda_graphs: bool | None = None,
        flush_denormal: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        # every argument in its domain (rainbow_ext.domains), then the checks that involve several
        check_values({name: value for name, value in locals().items() if name in DOMAINS})
        check_memory_option(n_steps, optimize_memory_usage)
        check_prioritized(prioritized, replay_buffer_class)
        self.head_options = HeadOptions(
            dueling=dueling,
            noisy=noisy,
            noisy_sigma0=noisy_sigma0,
            distributional=distributional,
            n_atoms=n_atoms,
            v_min=float(v_min),
            v_max=float(v_max),
            n_quantiles=n_quantiles,
            n_acting_quantiles=n_acting_quantiles,
            cosine_embedding_dim=cosine_embedding_dim,
        )
        check_munchausen(munchausen, self.head_options.kind)
        policy_kwargs = merge_head_options(policy_kwargs, self.head_options.as_kwargs())
        check_replay_buffer_kwargs(replay_buffer_kwargs, n_steps, gamma)
        if env is not None:
            env = maybe_make_env(env, verbose)
            if not isinstance(env.action_space, spaces.Discrete):
                raise ValueError(f"Rainbow needs a Discrete action space, got {env.action_space}")

        # Noisy nets explore by themselves: epsilon-greedy only when the user asks for it.
        exploration_given = any(
            eps is not None for eps in (exploration_fraction, exploration_initial_eps, exploration_final_eps)
        )
        if noisy and not exploration_given:
            exploration_initial_eps = exploration_final_eps = 0.0

        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            target_update_interval=target_update_interval,
            exploration_fraction=0.1 if exploration_fraction is None else exploration_fraction,
            exploration_initial_eps=1.0 if exploration_initial_eps is None else exploration_initial_eps,
            exploration_final_eps=0.05 if exploration_final_eps is None else exploration_final_eps,
            max_grad_norm=max_grad_norm,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.double_q = double_q
        self.munchausen = munchausen
        self.munchausen_tau = munchausen_tau
        self.munchausen_alpha = munchausen_alpha
        self.munchausen_l0 = munchausen_l0
        self.prioritized = prioritized
        self.per_alpha = per_alpha
        self.per_beta0 = per_beta0
        self.per_eps = per_eps
        check_cuda_graphs(cuda_graphs, self.device)
        self.frame_storage = frame_storage
        self.cuda_graphs = cuda_graphs
        self.flush_denormal = flush_denormal
        #: frames per observation kept by frame storage (0: off); resolved by _setup_model, saved with the model
        self.frame_stack: int | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # The network's options as saved (load replaces policy_kwargs after __init__); zips saved before an
        # option existed get its default.
        self.head_options = HeadOptions.from_kwargs(self.policy_kwargs)
        # Here rather than in __init__: SB3's load restores the saved n_steps just before this.
        if self.frame_stack is None:
            self.frame_stack = frames_to_store(
                self.frame_storage, self.env, self.observation_space, self.optimize_memory_usage
            )
        if self.replay_buffer is None:
            check_replay_fits(self.buffer_size, self.observation_space, self.frame_stack)
        self.replay_buffer_class, self.replay_buffer_kwargs = replay_buffer_choice(
            self.replay_buffer_class,
            self.replay_buffer_kwargs,
            isinstance(self.observation_space, spaces.Dict),
            self.prioritized,
            {"alpha": self.per_alpha, "eps": self.per_eps},
            self.n_steps,
            self.gamma,
            bool(self.frame_stack),
            self.optimize_memory_usage,
        )
        if self.frame_stack and self.replay_buffer is None:
            assert self.replay_buffer_class is not None
            self.replay_buffer = frame_stack_buffer(
                self.replay_buffer_class,
                self.buffer_size,
                self.observation_space,
                self.action_space,
                self.frame_stack,
                device=self.device,
                n_envs=self.n_envs,
                optimize_memory_usage=self.optimize_memory_usage,
                **self.replay_buffer_kwargs,
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored", category=UserWarning)
            super()._setup_model()
        self._train_stats = th.zeros(len(TRAIN_STATS), device=self.device)
        self._train_stats_count = 0
        self._setup_gradient_steps()

    @classmethod
    def from_preset(
        cls: type[SelfRainbow],
        name: str,
        policy: str | type[RainbowPolicy],
        env: GymEnv | str,
        **overrides: Any,
    ) -> SelfRainbow:
        """Build the named preset (see :mod:`rainbow_ext.presets`); ``overrides`` win over its flags.

        ``Rainbow.from_preset("rainbow-no-noisy", "MlpPolicy", "CartPole-v1", learning_rate=1e-3)``
        """
        flags = preset_flags(name)
        valid = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env", "_init_setup_model"}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown argument(s) {unknown} for {cls.__name__}; valid: {sorted(valid)}")
        return cls(policy, env, **{**flags, **overrides})

    @classmethod
    def load(cls: type[SelfRainbow], path: Any, env: GymEnv | None = None, **kwargs: Any) -> SelfRainbow:  # type: ignore[override]
        """SB3's ``load``. The head options are part of the saved network and cannot change here."""
        fixed = sorted(set(kwargs) & set(OPTION_NAMES))
        if fixed:
            raise ValueError(f"{fixed} cannot change at load: they define the saved network; build a new model instead")
        return super().load(path, env=env, **kwargs)

    # The head options live in policy_kwargs (and so in the saved zip); read-only views of them:
    dueling: bool = _head_option("dueling")  # type: ignore[assignment]
    noisy: bool = _head_option("noisy")  # type: ignore[assignment]
    noisy_sigma0: float = _head_option("noisy_sigma0")  # type: ignore[assignment]
    distributional: bool | str = _head_option("distributional")  # type: ignore[assignment]
    n_atoms: int = _head_option("n_atoms")  # type: ignore[assignment]
    v_min: float = _head_option("v_min")  # type: ignore[assignment]
    v_max: float = _head_option("v_max")  # type: ignore[assignment]
    n_quantiles: int | None = _head_option("n_quantiles")  # type: ignore[assignment]
    n_acting_quantiles: int = _head_option("n_acting_quantiles")  # type: ignore[assignment]
    cosine_embedding_dim: int = _head_option("cosine_embedding_dim")  # type: ignore[assignment]

    def _next_action_values(self, next_observations: PyTorchObs, next_q_target: th.Tensor) -> th.Tensor:
        """The values ``[batch, n_actions]`` by which the next actions are chosen (greedily, or by Munchausen's
        softmax), from prepared next observations. Double DQN (van Hasselt et al. 2016, eq. 4): the online
        network's, while the target network evaluates; otherwise the target network's own."""
        return self.q_net(next_observations, prepared=True) if self.double_q else next_q_target

    def _per_beta(self) -> float:
        """Importance-sampling exponent, linear from ``per_beta0`` to 1 over the run (Schaul et al. 2016)."""
        # SB3's progress can pass the end (it collects train_freq steps at a time), hence the clip.
        progress = min(max(1.0 - self._current_progress_remaining, 0.0), 1.0)
        return self.per_beta0 + (1.0 - self.per_beta0) * progress

    def _gradient_step(self, data: ReplayBufferSamples, weights: th.Tensor | None) -> th.Tensor:
        """One update of the online network: fresh noise, the target, the (importance-weighted) loss,
        backward, clipping and the optimizer step. Static shapes and no host syncs, so that it can be
        captured as a CUDA graph; what it logs is added to running sums on the device. Returns the
        per-sample errors that become the new priorities."""
        loss_terms = self._loss_terms
        if self.noisy:
            # Fresh noise every gradient step, drawn independently for the online and target nets; each
            # network's noisy weights built once for all its passes (the online one's with gradients).
            self.policy.reset_noise()
            online, target = self.q_net._noisy_layers, self.q_net_target._noisy_layers
            with built_noisy_weights(online), built_noisy_weights(target, grad=False):
                sample_losses, q_taken, errors = loss_terms(data)
        else:
            sample_losses, q_taken, errors = loss_terms(data)
        # Prioritized: importance weights correct the sampling bias (Schaul et al. 2016, section 3.4).
        if weights is not None:
            sample_losses = weights.view(-1, *[1] * (sample_losses.dim() - 1)) * sample_losses
        loss = sample_losses.mean()

        params = self._optimized()
        if self._graphed_step is not None:  # zeroed in place: a CUDA graph's gradients keep their addresses
            grads = [p.grad for p in params if p.grad is not None]
            if grads:  # none before the first step (eager, or the capture's warm-up after a load)
                th._foreach_zero_(grads)
        else:  # as SB3's zero_grad: backward then writes the gradients instead of adding them to zeros
            for p in params:
                p.grad = None
        loss.backward()
        clip_grad_norm(params, self.max_grad_norm)
        self.policy.optimizer.step()
        with th.no_grad():
            self._train_stats.add_(th.stack([loss.detach(), q_taken.mean(), errors.mean()]))
        return errors

    def _optimized(self) -> list[th.Tensor]:
        """The optimizer's parameters, as a list: SB3 clips ``policy.parameters()``, a walk of every
        submodule (the target network's too) on each gradient step, for the same norm."""
        return [p for group in self.policy.optimizer.param_groups for p in group["params"]]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._prepare_optimizer()
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        assert buffer is not None
        if self.prioritized:
            buffer.beta = self._per_beta()  # type: ignore[union-attr]
        for _ in range(gradient_steps):
            self._run_gradient_step(buffer.sample(batch_size, env=self._vec_normalize_env))
        self._finish_gradient_steps()
        self._n_updates += gradient_steps
        self._train_stats_count += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if self.prioritized:
            self.logger.record("train/per_beta", buffer.beta)  # type: ignore[union-attr]

    def record_train_stats(self) -> None:
        """Record the means of the training statistics since the last call, then start again: one
        device-to-host read per log interval rather than a sync at every gradient step."""
        if not self._train_stats_count:
            return
        loss, q_mean, error = (self._train_stats / self._train_stats_count).tolist()
        self._train_stats.zero_()
        self._train_stats_count = 0
        self.logger.record("train/loss", loss)
        self.logger.record("train/q_mean", q_mean)
        self.logger.record(f"train/{ERROR_METRIC[self.head_options.kind]}", error)

    def dump_logs(self) -> None:
        self.record_train_stats()
        # A state of the network rather than of one update: read when the logs are written, as SB3's
        # gSDE ``train/std``, instead of at every gradient step (a pass over every sigma).
        if self.noisy:
            self.logger.record("train/noise_sigma_mean", self.q_net.noise_sigma_mean())
        super().dump_logs()

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if (reset_num_timesteps or self._last_obs is None) and self.replay_buffer is not None:
            end_stored_episodes(self.replay_buffer)  # SB3 resets the env next: no n-step window may cross it
        return super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)

    def _excluded_save_params(self) -> list[str]:
        # device state, rebuilt by _setup_model
        return [
            *super()._excluded_save_params(),
            "_train_stats",
            "_pending_priorities",
            "_priorities_pinned",
            "_graphed_step",
            "head_options",  # rebuilt from policy_kwargs
        ]

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        self._apply_pending_priorities()
        super().save_replay_buffer(path)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)
        self._pending_priorities = None  # they belonged to the buffer that was replaced
        if self.graphed:  # sampled on the host, see _setup_cuda_graphs
            self.replay_buffer.device = th.device("cpu")  # type: ignore[union-attr]
        if truncate_last_traj:  # its newest episode does not go on in this env
            end_stored_episodes(self.replay_buffer)  # type: ignore[arg-type]

    def learn(
        self: SelfRainbow,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "Rainbow",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRainbow:
        with flushed_denormals(self.flush_denormal):
            return super().learn(
                total_timesteps=total_timesteps,
                callback=callback,
                log_interval=log_interval,
                tb_log_name=tb_log_name,
                reset_num_timesteps=reset_num_timesteps,
                progress_bar=progress_bar,
            )
