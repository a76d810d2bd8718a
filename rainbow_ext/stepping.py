"""How Rainbow's gradient steps run (:class:`GradientSteps`, a part of :class:`~rainbow_ext.rainbow.Rainbow`):
eagerly, as SB3 runs them, or each one replayed as a CUDA graph (:mod:`rainbow_ext.cuda_graphs`) with its
batch copied in through pinned memory and its priorities applied one step late; and the CPU's float mode
during ``learn`` (``flush_denormal``). The algorithm itself, what a step computes, is
``Rainbow._gradient_step``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.utils import _pytree as pytree

from rainbow_ext.cuda_graphs import CapturedFunction, with_index


class GradientSteps:
    """The part of Rainbow that runs its gradient steps: CUDA graphs when the model is on a CUDA device
    (``cuda_graphs``), eager steps otherwise. Rainbow calls :meth:`_setup_gradient_steps` once its policy
    and buffer exist, :meth:`_run_gradient_step` for each sampled batch and :meth:`_finish_gradient_steps`
    at the end of ``train``."""

    # set by Rainbow (SB3's DQN) before any of these methods runs
    cuda_graphs: bool | None
    device: th.device
    policy: Any
    replay_buffer: Any
    prioritized: bool
    gamma: float
    lr_schedule: Any
    logger: Any
    _current_progress_remaining: float
    _train_stats: th.Tensor

    def _gradient_step(self, data: ReplayBufferSamples, weights: th.Tensor | None) -> th.Tensor:
        raise NotImplementedError

    def _optimized(self) -> list[th.Tensor]:
        raise NotImplementedError

    def _setup_gradient_steps(self) -> None:
        # CUDA graphs: the last step's sampled indices, and the event after which its priorities are on the host
        self._pending_priorities: tuple[np.ndarray, th.cuda.Event] | None = None
        self._priorities_pinned: th.Tensor | None = None
        self._graphed_step: CapturedFunction | None = None
        self._setup_cuda_graphs()

    @property
    def graphed(self) -> bool:
        """Whether gradient steps and acting run as CUDA graphs (``cuda_graphs``, resolved for the device)."""
        return self.cuda_graphs is not False and self.device.type == "cuda"

    def _setup_cuda_graphs(self) -> None:
        self.policy.use_cuda_graphs(self.graphed)
        if not self.graphed:
            return
        # Batches are sampled on the host and reach the graph's buffers through pinned memory, without blocking.
        if self.replay_buffer is not None:
            self.replay_buffer.device = th.device("cpu")
        if "capturable" not in self.policy.optimizer.defaults:
            warnings.warn(
                f"{type(self.policy.optimizer).__name__} cannot be captured in a CUDA graph (no capturable option): "
                "gradient steps run eagerly, acting still runs as a CUDA graph",
                stacklevel=2,
            )
            return
        self._graphed_step = CapturedFunction(self._gradient_step, self._step_tensors, self.device, restore=True)

    def _run_gradient_step(self, data: ReplayBufferSamples) -> None:
        """One gradient step on a sampled batch, and its new priorities: replayed as a CUDA graph with the
        priorities applied one step late, or eagerly with them applied at once."""
        weights = data.weights if self.prioritized else None  # type: ignore[union-attr]
        batch = ReplayBufferSamples(*data[:6])  # type: ignore[misc]
        if self._graphed_step is not None and self.policy.optimizer.state:
            # a graph's inputs are tensors of fixed shapes: one-step buffers' discounts too
            errors = self._graphed_step(batch._replace(discounts=discounts(batch, self.gamma)), weights)
            # The previous step's priorities, once this step is queued behind it: the device never
            # waits for the host, and the next batch is sampled while this step runs. This batch was
            # sampled before them either way (priorities one step late).
            self._apply_pending_priorities()
            if self.prioritized:
                self._defer_priorities(data.indices, errors)  # type: ignore[union-attr]
            return
        # Eager: on the CPU, without CUDA graphs, and for the first step (it creates the optimizer's
        # state, which capture then finds in place).
        if device_of(batch).type != self.device.type:
            batch, weights = pytree.tree_map_only(th.Tensor, lambda t: t.to(self.device), (batch, weights))
        errors = self._gradient_step(batch, weights)
        if self.prioritized:
            # New priorities: the per-sample loss that drives learning (C51: cross-entropy, else |TD|).
            self.replay_buffer.update_priorities(data.indices, errors)  # type: ignore[union-attr]

    def _finish_gradient_steps(self) -> None:
        # The last step's priorities too: acting syncs with the device next anyway, and a priority
        # left pending could land on a slot that new transitions have taken meanwhile.
        self._apply_pending_priorities()

    def _step_tensors(self) -> list[th.Tensor]:
        """Everything a gradient step reads or writes besides its batch (for CUDA graph capture)."""
        self._prepare_optimizer()
        optimizer = self.policy.optimizer
        tensors = [*self.policy.parameters(), *self.policy.buffers(), self._train_stats]
        tensors += [p.grad for p in self._optimized() if p.grad is not None]
        for group in optimizer.param_groups:
            tensors += [group["lr"]] if isinstance(group["lr"], th.Tensor) else []
            for p in group["params"]:
                tensors += [v for v in optimizer.state.get(p, {}).values() if isinstance(v, th.Tensor)]
        return tensors

    def _prepare_optimizer(self) -> None:
        """Capturable with the learning rate in a device tensor (that schedules fill in place) when
        gradient steps are CUDA graphs; as the policy built it otherwise (also after a ``load``,
        whose saved parameter groups replace these settings)."""
        graphed = self._graphed_step is not None
        device = with_index(self.device)
        for group in self.policy.optimizer.param_groups:
            lr = group["lr"]
            if graphed and not (isinstance(lr, th.Tensor) and lr.dtype == th.float32 and lr.device == device):
                # fused Adam reads a CUDA learning rate as float32; one on the host would be baked in
                group["lr"] = th.tensor(float(lr), dtype=th.float32, device=device)
                group["capturable"] = True
            elif not graphed and isinstance(group["lr"], th.Tensor):
                group["lr"] = float(group["lr"])
                group["capturable"] = self.policy.optimizer_kwargs.get("capturable", False)
        if graphed:  # capturable optimizers keep their step count on the device
            for state in self.policy.optimizer.state.values():
                if isinstance(state.get("step"), th.Tensor) and state["step"].device != device:
                    state["step"] = state["step"].to(device, th.float32)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        # SB3's, except that a learning rate kept in a tensor (CUDA graphs) is filled in place.
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                if isinstance(group["lr"], th.Tensor):
                    group["lr"].fill_(learning_rate)
                else:
                    group["lr"] = learning_rate

    def _defer_priorities(self, indices: np.ndarray, errors: th.Tensor) -> None:
        """Copy the step's priorities to pinned host memory without waiting; applied at the next step."""
        pinned = self._priorities_pinned
        if pinned is None or pinned.shape != errors.shape:
            pinned = self._priorities_pinned = th.empty(errors.shape, dtype=errors.dtype).pin_memory()
        pinned.copy_(errors, non_blocking=True)
        event = th.cuda.Event()
        event.record(th.cuda.current_stream(self.device))
        self._pending_priorities = (np.array(indices, copy=True), event)

    def _apply_pending_priorities(self) -> None:
        if self._pending_priorities is None:
            return
        indices, event = self._pending_priorities
        self._pending_priorities = None
        event.synchronize()
        assert self._priorities_pinned is not None
        self.replay_buffer.update_priorities(indices, self._priorities_pinned.numpy())  # type: ignore[union-attr]


@contextmanager
def flushed_denormals(enabled: bool) -> Iterator[None]:
    """Subnormal floats flushed to zero inside the block when ``enabled``, then the mode as it was. The mode
    belongs to the calling thread: torch's intra-op worker threads keep theirs, so with more than one torch
    thread part of the work still meets subnormals (a warning says so)."""
    if not enabled:
        yield
        return
    was_on = flushing_denormals()
    if th.get_num_threads() > 1:
        warnings.warn(
            f"flush_denormal=True flushes subnormal floats in the thread that calls learn only, and torch runs "
            f"{th.get_num_threads()} threads: work its other threads do still meets them (torch.set_num_threads(1) "
            "for the whole effect)",
            stacklevel=4,
        )
    th.set_flush_denormal(True)
    try:
        yield
    finally:
        th.set_flush_denormal(was_on)


def flushing_denormals() -> bool:
    """Whether this thread flushes subnormal floats to zero (a subnormal operand then reads as zero)."""
    return bool((th.tensor([1e-39], dtype=th.float32) * 1.0).item() == 0.0)


def clip_grad_norm(params: list[th.Tensor], max_norm: float) -> None:
    """SB3's ``clip_grad_norm_``, bit for bit (the norm of the per-tensor norms, scaled by
    ``min(1, max_norm / (norm + 1e-6))``), through torch's multi-tensor kernels on every device: on the
    CPU, ``clip_grad_norm_`` dispatches two ops per parameter tensor."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = th.linalg.vector_norm(th.stack(th._foreach_norm(grads, 2.0)), 2.0)
    th._foreach_mul_(grads, th.clamp(max_norm / (total + 1e-6), max=1.0))


def discounts(data: ReplayBufferSamples, gamma: float) -> th.Tensor:
    """The bootstrap discounts as a tensor for every batch (one-step buffers leave them to the learner)."""
    return data.discounts if data.discounts is not None else th.full_like(data.rewards, gamma)


def device_of(batch: ReplayBufferSamples) -> th.device:
    return pytree.tree_leaves(batch.observations)[0].device
