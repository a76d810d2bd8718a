"""The loss of each head (:class:`DistributionalLoss`, a part of :class:`~rainbow_ext.rainbow.Rainbow`): the
Huber TD loss on expected values, as SB3's DQN; C51's cross-entropy to the projected target distribution
(Bellemare et al. 2017); the quantile Huber loss of QR-DQN's fixed fractions (Dabney et al. 2018a) and of
IQN's sampled ones (Dabney et al. 2018b). Each returns its per-sample losses, which prioritized replay
weights, and the per-sample error that becomes the new priority.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs, ReplayBufferSamples

from rainbow_ext.losses import categorical_loss, categorical_projection, huber_loss, quantile_huber_loss
from rainbow_ext.munchausen import munchausen_bonus, soft_bootstrap

# Per-sample losses ([batch], or [batch, N'] for quantile heads), Q(s, a) of the taken actions, and the
# per-sample error ([batch]) that is logged and becomes the priority.
LossTerms = tuple[th.Tensor, th.Tensor, th.Tensor]
#: the per-sample error each head logs (and prioritizes by), by head kind
ERROR_METRIC = {"q": "td_error_abs", "c51": "cross_entropy", "qr": "quantile_loss", "iqn": "quantile_loss"}


class DistributionalLoss:
    """The loss of Rainbow's head, by its kind (``q_net.kind``). Rainbow provides the networks, the
    discount, how the next actions are chosen (``_next_action_values``, Double DQN's one place) and the
    Munchausen switch."""

    q_net: Any
    q_net_target: Any
    gamma: float
    munchausen: bool
    munchausen_tau: float
    munchausen_alpha: float
    munchausen_l0: float

    def _next_action_values(self, next_observations: PyTorchObs, next_q_target: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    def _loss_terms(self, data: ReplayBufferSamples) -> LossTerms:
        kind = self.q_net.kind
        if kind == "c51":
            return self._categorical_terms(data)
        if kind in ("qr", "iqn"):
            return self._quantile_terms(data)
        return self._huber_terms(data)

    def _targets(self, data: ReplayBufferSamples, next_observations: PyTorchObs, next_values: th.Tensor) -> th.Tensor:
        """y = R + (1 - done) * gamma^k * v(s') per target sample, ``[batch, k]``, from the target network's
        ``next_values`` ``[batch, n_actions, k]`` (k = 1 for Q-values): at the greedy next action, or, with
        Munchausen, under the softmax policy and with the log-policy bonus added to R."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        choosing = self._next_action_values(next_observations, self.q_net_target.q_values(next_values))
        rewards = data.rewards
        if self.munchausen:
            bootstrap = soft_bootstrap(choosing, next_values, self.munchausen_tau)
            q_target = self.q_net_target(data.observations)
            bonus = munchausen_bonus(
                q_target, data.actions, self.munchausen_tau, self.munchausen_alpha, self.munchausen_l0
            )
            rewards = rewards + bonus
        else:
            next_actions = choosing.argmax(dim=1, keepdim=True).unsqueeze(-1)
            bootstrap = next_values.gather(1, next_actions.expand(-1, 1, next_values.shape[-1])).squeeze(1)
        return rewards + (1 - data.dones) * discounts * bootstrap

    def _huber_terms(self, data: ReplayBufferSamples) -> LossTerms:
        """Huber loss on y = R + (1 - done) * gamma^k * Q_target(s', a*), as SB3's DQN."""
        with th.no_grad():
            next_observations = self.q_net.prepare(data.next_observations)  # once for every pass
            next_values = self.q_net_target.head_output(next_observations, prepared=True)
            targets = self._targets(data, next_observations, next_values)
        q_taken = self.q_net(data.observations).gather(1, data.actions.long())
        return huber_loss(q_taken, targets), q_taken.detach().squeeze(1), (targets - q_taken).detach().abs().squeeze(1)

    def _categorical_terms(self, data: ReplayBufferSamples) -> LossTerms:
        """C51: cross-entropy between the projected target distribution and the online one."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        n_atoms = self.q_net.support.shape[0]
        with th.no_grad():
            next_observations = self.q_net.prepare(data.next_observations)  # once for every pass
            next_logits = self.q_net_target.head_output(next_observations, prepared=True)
            choosing = self._next_action_values(next_observations, self.q_net_target.q_values(next_logits))
            next_actions = choosing.argmax(dim=1, keepdim=True)
            next_probs = next_logits.softmax(dim=-1).gather(1, next_actions.unsqueeze(-1).expand(-1, 1, n_atoms))
            target_probs = categorical_projection(
                next_probs.squeeze(1), data.rewards, data.dones, discounts, self.q_net_target.support
            )
        logits = self.q_net.head_output(data.observations)
        taken_logits = logits.gather(1, data.actions.long().unsqueeze(-1).expand(-1, 1, n_atoms)).squeeze(1)
        losses = categorical_loss(taken_logits, target_probs)
        q_taken = (taken_logits.detach().softmax(dim=-1) * self.q_net.support).sum(dim=-1)
        return losses, q_taken, losses.detach()

    def _quantile_terms(self, data: ReplayBufferSamples) -> LossTerms:
        """Quantile Huber loss between the online quantiles at the taken actions and the target samples:
        QR-DQN's N fixed midpoints against the target network's N quantiles, or IQN's N sampled fractions
        against N' = N quantiles at fractions sampled for the target network. The per-sample error is the
        sample's loss (its mean over the target samples)."""
        iqn = self.q_net.kind == "iqn"
        n = self.q_net.head_options.quantiles
        batch_size = data.rewards.shape[0]
        with th.no_grad():
            next_observations = self.q_net.prepare(data.next_observations)  # once for every pass
            target_taus = self.q_net_target.sample_taus(batch_size, n) if iqn else None
            next_quantiles = self.q_net_target.head_output(next_observations, prepared=True, taus=target_taus)
            targets = self._targets(data, next_observations, next_quantiles)
        taus = self.q_net.sample_taus(batch_size, n) if iqn else None
        quantiles = self.q_net.head_output(data.observations, taus=taus)
        taken = quantiles.gather(1, data.actions.long().unsqueeze(-1).expand(-1, 1, n)).squeeze(1)
        fractions = taus.unsqueeze(-1) if taus is not None else self.q_net.midpoints.view(1, -1, 1)
        losses = quantile_huber_loss(taken, targets, fractions)
        return losses, taken.detach().mean(dim=-1), losses.detach().mean(dim=-1)
