"""Munchausen (Vieillard et al. 2020): the target against a direct computation, for expected values and
per target quantile, and the combinations it is refused."""

import numpy as np
import pytest
import torch as th

from rainbow_ext import Rainbow
from rainbow_ext.munchausen import scaled_log_policy
from tests.test_quantile_heads import SMALL, _batch


def _softmax_terms(q: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """pi = softmax(q / tau) and tau log pi, row by row, in float64 from the definition."""
    logits = q / tau
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    return pi, tau * np.log(pi)


def test_scaled_log_policy_is_tau_log_softmax_and_stable() -> None:
    q = th.tensor([[1.0, 2.0, 0.5], [-3.0, 4.0, 4.0]], dtype=th.float64)
    expected = 0.03 * th.log_softmax(q / 0.03, dim=1)
    th.testing.assert_close(scaled_log_policy(q, 0.03), expected)
    # a tiny temperature: exp(q / tau) overflows, the shifted form does not
    assert th.isfinite(scaled_log_policy(q.float() * 1e3, 1e-4)).all()


@pytest.mark.parametrize("double_q", [False, True])
def test_munchausen_target_against_a_direct_computation(double_q: bool) -> None:
    """y = r + alpha clip(tau log pi(a|s), l0, 0) + gamma^k (1 - done) sum_a' pi(a'|s') (q(s', a') - tau log pi(a'|s')),
    pi the softmax of the target network's values (of the online network's at s' with double Q)."""
    tau, alpha, l0 = 0.5, 0.9, -1.0  # a large tau, so that both actions carry weight and the clip acts on some
    model = Rainbow.from_preset("m-dqn", "MlpPolicy", "CartPole-v1", munchausen_tau=tau, double_q=double_q, **SMALL)
    with th.no_grad():
        for p in model.q_net_target.parameters():
            p.add_(0.5 * th.randn_like(p))
    data = _batch(model.device)
    with th.no_grad():
        next_obs = model.q_net.prepare(data.next_observations)
        next_values = model.q_net_target.head_output(next_obs, prepared=True)
        targets = model._targets(data, next_obs, next_values).cpu().numpy()[:, 0]
        q_s = model.q_net_target(data.observations).cpu().numpy().astype(np.float64)
        q_next = model.q_net_target(data.next_observations).cpu().numpy().astype(np.float64)
        chooser = model.q_net(data.next_observations).cpu().numpy().astype(np.float64) if double_q else q_next
    _, log_pi_s = _softmax_terms(q_s, tau)
    pi_next, log_pi_next = _softmax_terms(chooser, tau)
    r, d, g = (x.cpu().numpy()[:, 0] for x in (data.rewards, data.dones, data.discounts))
    a = data.actions.cpu().numpy()[:, 0]
    bonus = alpha * np.clip(log_pi_s[np.arange(len(a)), a], l0, 0.0)
    soft_value = (pi_next * (q_next - log_pi_next)).sum(axis=1)
    expected = r + bonus + (1 - d) * g * soft_value
    np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-5)
    assert (bonus < 0).all() and (bonus > alpha * l0).any()  # the case exercises the bonus, not only its clip


def test_munchausen_per_target_quantile_for_iqn() -> None:
    """M-IQN: the bracket per target quantile j, with pi from the mean over the sampled quantiles."""
    tau, alpha, l0 = 0.5, 0.9, -1.0
    model = Rainbow.from_preset(
        "iqn", "MlpPolicy", "CartPole-v1", munchausen=True, munchausen_tau=tau, n_quantiles=4, **SMALL
    )
    data = _batch(model.device)
    next_values = th.randn(6, 2, 4, device=model.device)  # [batch, actions, N'] target quantiles
    with th.no_grad():
        with th.random.fork_rng(devices=range(th.cuda.device_count())):  # the draws repeat after the block
            targets = model._targets(data, data.next_observations, next_values).cpu().numpy()
        q_s = model.q_net_target(data.observations).cpu().numpy().astype(np.float64)  # the same K fractions
    values = next_values.cpu().numpy().astype(np.float64)
    _, log_pi_s = _softmax_terms(q_s, tau)
    pi_next, log_pi_next = _softmax_terms(values.mean(axis=-1), tau)
    r, d, g = (x.cpu().numpy()[:, 0] for x in (data.rewards, data.dones, data.discounts))
    a = data.actions.cpu().numpy()[:, 0]
    bonus = alpha * np.clip(log_pi_s[np.arange(len(a)), a], l0, 0.0)
    soft = (pi_next[:, :, None] * (values - log_pi_next[:, :, None])).sum(axis=1)  # [batch, N']
    expected = r[:, None] + bonus[:, None] + ((1 - d) * g)[:, None] * soft
    assert targets.shape == (6, 4)
    np.testing.assert_allclose(targets, expected, rtol=1e-5, atol=1e-5)


def test_without_munchausen_the_target_is_the_greedy_one() -> None:
    model = Rainbow.from_preset("dqn", "MlpPolicy", "CartPole-v1", **SMALL)
    data = _batch(model.device)
    next_values = th.tensor([[1.0, 3.0]] * 6, device=model.device).unsqueeze(-1)
    targets = model._targets(data, data.next_observations, next_values)
    th.testing.assert_close(targets, data.rewards + (1 - data.dones) * data.discounts * 3.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(distributional=True), "munchausen=True does not apply to the C51 head"),
        (dict(distributional="c51"), "munchausen=True does not apply to the C51 head"),
        (dict(distributional=False, munchausen_tau=0.0), "munchausen_tau must be a finite number > 0"),
        (dict(distributional=False, munchausen_tau=float("nan")), "munchausen_tau must be a finite number > 0"),
        (dict(distributional=False, munchausen_alpha=1.5), r"munchausen_alpha must be a finite number in \[0, 1\]"),
        (dict(distributional=False, munchausen_l0=0.5), "munchausen_l0 must be a finite number < 0"),
        (dict(distributional=False, munchausen="yes"), "munchausen must be one of True, False"),
    ],
)
def test_bad_munchausen_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rainbow("MlpPolicy", "CartPole-v1", munchausen=kwargs.pop("munchausen", True), **kwargs, **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(distributional="quantile"), "distributional must be one of True, False, 'c51', 'qr', 'iqn'"),
        (dict(distributional="qr", n_quantiles=0), "n_quantiles must be an integer >= 1"),
        (dict(distributional="iqn", n_acting_quantiles=2.5), "n_acting_quantiles must be an integer >= 1"),
        (dict(distributional="iqn", cosine_embedding_dim=0), "cosine_embedding_dim must be an integer >= 1"),
    ],
)
def test_bad_head_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rainbow("MlpPolicy", "CartPole-v1", **kwargs, **SMALL)
