"""Losses: the categorical (C51) projection and cross-entropy, the quantile Huber loss (QR-DQN, IQN) and the
scalar Huber TD loss.

Every function returns the loss per sample (the quantile loss: per sample and target quantile) so that
prioritized replay can weight them and reuse them as priorities.
"""

from __future__ import annotations

import torch as th
from torch.nn import functional as F


def categorical_projection(
    next_probs: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    support: th.Tensor,
) -> th.Tensor:
    """Project the distribution of ``r + discount * Z(s', a*)`` onto the fixed support
    (Bellemare et al. 2017, Algorithm 1).

    :param next_probs: ``[batch, n_atoms]`` probabilities of the target network at ``(s', a*)``
    :param rewards: ``[batch, 1]`` (n-step discounted) rewards
    :param dones: ``[batch, 1]`` 1.0 where the episode terminated (bootstrap off), else 0.0
    :param discounts: ``[batch, 1]`` or a scalar: ``gamma ** k`` with k the steps actually summed
    :param support: ``[n_atoms]`` evenly spaced atoms z_0 = v_min, ..., z_{N-1} = v_max
    :return: ``[batch, n_atoms]`` target probabilities (each row sums to the row of ``next_probs``)
    """
    n_atoms = support.shape[0]
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (n_atoms - 1)
    # Tz_j = r + (1 - done) * gamma^k * z_j, clipped to [v_min, v_max]
    target_atoms = (rewards + (1.0 - dones) * discounts * support.unsqueeze(0)).clamp(v_min, v_max)
    # b_j in [0, N - 1]: fractional index of Tz_j; its mass goes to floor(b_j) and floor(b_j) + 1
    # with weights 1 - frac and frac. When b_j is an integer (Tz_j on an atom), frac = 0 and all the
    # mass stays on that atom; the upper index is clamped and then carries zero weight.
    b = (target_atoms - v_min) / delta_z
    lower = b.floor().clamp(0, n_atoms - 1)
    frac = b - lower
    upper = (lower + 1).clamp(max=n_atoms - 1)
    projected = th.zeros_like(next_probs)
    projected.scatter_add_(1, lower.long(), next_probs * (1.0 - frac))
    projected.scatter_add_(1, upper.long(), next_probs * frac)
    return projected


def categorical_loss(logits: th.Tensor, target_probs: th.Tensor) -> th.Tensor:
    """Cross-entropy ``-sum_i m_i log p_i(s, a)`` per sample (Bellemare et al. 2017, Algorithm 1).

    :param logits: ``[batch, n_atoms]`` online-network logits at the taken actions
    :param target_probs: ``[batch, n_atoms]`` projected target distribution (no gradient)
    :return: ``[batch]``
    """
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def huber_loss(q_values: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """Huber (smooth L1) TD loss per sample, as SB3's DQN uses; ``[batch, 1]`` inputs -> ``[batch]``."""
    return F.smooth_l1_loss(q_values, targets, reduction="none").squeeze(-1)


def quantile_huber_loss(quantiles: th.Tensor, target_quantiles: th.Tensor, taus: th.Tensor) -> th.Tensor:
    """Quantile Huber loss with kappa = 1 (Dabney et al. 2018a, eq. 10; 2018b, eq. 3), summed over the
    current quantiles: ``sum_i |tau_i - 1{delta_ij < 0}| L_1(delta_ij)`` with ``delta_ij = T theta_j - theta_i``.
    Its mean over the target quantiles ``j`` is a sample's loss; the arithmetic is sb3-contrib's
    ``quantile_huber_loss``, so that QR-DQN's updates match it bit for bit.

    :param quantiles: ``[batch, N]`` online quantiles at the taken actions
    :param target_quantiles: ``[batch, N']`` target samples (no gradient)
    :param taus: the fractions of ``quantiles``: ``[1, N, 1]`` (QR's midpoints) or ``[batch, N, 1]`` (IQN's)
    :return: ``[batch, N']``
    """
    delta = target_quantiles.unsqueeze(-2) - quantiles.unsqueeze(-1)  # [batch, N, N']
    abs_delta = th.abs(delta)
    huber = th.where(abs_delta > 1, abs_delta - 0.5, delta**2 * 0.5)
    # under-estimates (delta > 0) weigh tau, over-estimates 1 - tau: the asymmetry that makes theta_i a quantile
    return (th.abs(taus - (delta.detach() < 0).float()) * huber).sum(dim=-2)
