"""Munchausen RL (Vieillard et al. 2020): the TD target of a softmax policy, plus the scaled log-policy of the
taken action as a reward bonus,

    y = r + alpha * clip(tau log pi(a|s), l0, 0) + gamma * sum_a' pi(a'|s') (q(s', a') - tau log pi(a'|s')),

with ``pi = softmax(q_target / tau)`` (eq. 2 and section 3). For quantile heads the bracket is taken per
target quantile, as M-IQN does (appendix B). These functions are the component; Rainbow's loss
(:mod:`rainbow_ext.distributional`) calls them when ``munchausen=True``.
"""

from __future__ import annotations

import torch as th


def scaled_log_policy(q_values: th.Tensor, tau: float) -> th.Tensor:
    """``tau * log softmax(q / tau)`` over actions (dim 1), ``[batch, n_actions]``, computed as
    ``q - max q - tau * logsumexp((q - max q) / tau)`` so that a small ``tau`` cannot overflow."""
    advantage = q_values - q_values.max(dim=1, keepdim=True).values
    return advantage - tau * th.logsumexp(advantage / tau, dim=1, keepdim=True)


def munchausen_bonus(q_values: th.Tensor, actions: th.Tensor, tau: float, alpha: float, l0: float) -> th.Tensor:
    """``alpha * clip(tau log pi(a|s), l0, 0)``, ``[batch, 1]``: the target network's Q-values at ``s``
    ``[batch, n_actions]`` and the taken actions ``[batch, 1]``."""
    return alpha * scaled_log_policy(q_values, tau).gather(1, actions.long()).clamp(l0, 0.0)


def soft_bootstrap(policy_q: th.Tensor, next_values: th.Tensor, tau: float) -> th.Tensor:
    """``sum_a' pi(a'|s') (v(s', a') - tau log pi(a'|s'))`` with ``pi = softmax(policy_q / tau)``,
    ``[batch, k]``: ``policy_q`` ``[batch, n_actions]``, ``next_values`` ``[batch, n_actions, k]`` (k = 1
    for Q-values, the target quantiles otherwise)."""
    log_pi = scaled_log_policy(policy_q, tau)
    pi = (log_pi / tau).exp()
    return (pi.unsqueeze(-1) * (next_values - log_pi.unsqueeze(-1))).sum(dim=1)
