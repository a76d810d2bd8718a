"""The quantile heads: QR-DQN (Dabney et al. 2018a) equal to sb3-contrib's QRDQN, and IQN (Dabney et al.
2018b): its fractions, its cosine embedding, and its loss against a direct computation."""

import numpy as np
import pytest
import torch as th
from sb3_contrib import QRDQN
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from rainbow_ext import Rainbow
from rainbow_ext.layers import CosineEmbedding

HYPERPARAMS = dict(
    learning_starts=100,
    buffer_size=5_000,
    train_freq=1,
    target_update_interval=200,
    batch_size=32,
    learning_rate=1e-4,
    max_grad_norm=10,
    exploration_fraction=0.1,
    exploration_initial_eps=1.0,
    exploration_final_eps=0.05,
)
SMALL = dict(learning_starts=50, buffer_size=500, batch_size=8, policy_kwargs=dict(net_arch=[16]))


@pytest.mark.parametrize("n_steps", [1, 3])
def test_qr_preset_equals_sb3_contrib_qrdqn(n_steps: int) -> None:
    kwargs = dict(HYPERPARAMS, n_steps=n_steps, seed=7)
    # QRDQN replaces optimizer_kwargs by eps = 0.01 / batch_size unless optimizer_class is given: give both
    optimizer = dict(optimizer_class=th.optim.Adam, optimizer_kwargs=dict(eps=0.01 / 32))
    theirs = QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(n_quantiles=25, **optimizer), **kwargs).learn(1_500)
    ours = Rainbow.from_preset(
        "qr",
        "MlpPolicy",
        "CartPole-v1",
        n_quantiles=25,
        policy_kwargs=optimizer,
        cuda_graphs=False,  # eager on a GPU too, as in the DQN equivalence test
        **kwargs,
    ).learn(1_500)
    assert ours._n_updates == theirs._n_updates > 1_000
    their_params = list(theirs.policy.state_dict().values())
    our_params = list(ours.policy.state_dict().values())
    assert len(their_params) == len(our_params) == 12
    for a, b in zip(their_params, our_params, strict=True):
        assert th.equal(a, b)
    # The same quantiles for the same observations, in the head's [batch, actions, quantiles] layout.
    obs = th.as_tensor(ours.replay_buffer.observations[:64, 0], device=ours.device)
    with th.no_grad():
        assert th.equal(theirs.quantile_net(obs).transpose(1, 2), ours.q_net.quantiles(obs))
    assert ours.exploration_rate == theirs.exploration_rate


def test_qr_midpoints_and_defaults() -> None:
    model = Rainbow.from_preset("qr", "MlpPolicy", "CartPole-v1", **SMALL)
    assert model.q_net.head_options.quantiles == 200  # sb3-contrib's default
    th.testing.assert_close(
        model.q_net.midpoints.cpu(), th.tensor([(2 * i + 1) / 400 for i in range(200)], dtype=th.float32)
    )
    assert Rainbow.from_preset("iqn", "MlpPolicy", "CartPole-v1", **SMALL).q_net.head_options.quantiles == 64


def test_cosine_embedding_closed_form() -> None:
    th.manual_seed(0)
    embedding = CosineEmbedding(n_cosines=4, features_dim=3)
    taus = th.tensor([[0.0, 0.25, 0.9]])
    out = embedding(taus)
    assert out.shape == (1, 3, 3)
    w, b = embedding.linear.weight.detach().numpy(), embedding.linear.bias.detach().numpy()
    for k, tau in enumerate(taus[0].tolist()):
        cosines = np.cos(np.pi * np.arange(4) * tau)  # i = 0, ..., n - 1 (eq. 4)
        np.testing.assert_allclose(out[0, k].detach().numpy(), np.maximum(w @ cosines + b, 0.0), rtol=1e-5, atol=1e-6)


def test_iqn_fractions_are_fresh_uniform_samples() -> None:
    model = Rainbow.from_preset("iqn", "MlpPolicy", "CartPole-v1", **SMALL)
    taus = model.q_net.sample_taus(4000)
    assert taus.shape == (4000, 32)  # K = 32 when acting
    values = taus.flatten().cpu().numpy()
    assert values.min() >= 0.0 and values.max() < 1.0
    # Kolmogorov-Smirnov against U(0, 1): 128,000 draws, the 1e-4 critical value is about 1.95 / sqrt(n)
    ordered = np.sort(values)
    n = len(ordered)
    ks = np.max(np.maximum(np.arange(1, n + 1) / n - ordered, ordered - np.arange(n) / n))
    assert ks < 1.95 / np.sqrt(n)
    assert not th.equal(model.q_net.sample_taus(2), model.q_net.sample_taus(2))
    assert model.q_net.sample_taus(3, 64).shape == (3, 64)


def test_iqn_head_runs_once_per_fraction() -> None:
    """Each (row, tau) is the head applied to psi(x) * phi(tau): the same as running one row and one tau."""
    model = Rainbow.from_preset("iqn", "MlpPolicy", "CartPole-v1", **SMALL)
    q_net = model.q_net
    obs = th.randn(5, 4, device=model.device)
    taus = th.rand(5, 7, device=model.device)
    with th.no_grad():
        out = q_net.head_output(obs, taus=taus)
        assert out.shape == (5, 2, 7)
        for row in range(5):
            for k in range(7):
                features = q_net.features_extractor(obs[row : row + 1])
                one = q_net.head(features * q_net.tau_embedding(taus[row : row + 1, k : k + 1])[:, 0])
                th.testing.assert_close(out[row, :, k], one[0, :, 0])
        # Q-values: the mean over K fresh fractions (risk-neutral), so two calls differ a little
        q = q_net(obs)
        assert q.shape == (5, 2) and not th.equal(q, q_net(obs))


def _batch(device: th.device, batch: int = 6) -> ReplayBufferSamples:
    g = th.Generator().manual_seed(1)
    return ReplayBufferSamples(
        observations=th.randn(batch, 4, generator=g).to(device),
        actions=th.randint(0, 2, (batch, 1), generator=g).to(device),
        next_observations=th.randn(batch, 4, generator=g).to(device),
        dones=th.tensor([[0.0], [1.0], [0.0], [0.0], [1.0], [0.0]])[:batch].to(device),
        rewards=th.randn(batch, 1, generator=g).to(device),
        discounts=th.tensor([[0.9], [0.9], [0.81], [0.729], [0.9], [0.81]])[:batch].to(device),
    )


@pytest.mark.parametrize("double_q", [False, True])
def test_iqn_loss_against_a_direct_computation(double_q: bool) -> None:
    """N' target fractions for the target network, N for the online one, a* from the mean over them (or
    over K online fractions with double Q), and the loss summed over i and averaged over j, element by element."""
    n = 5
    model = Rainbow.from_preset("iqn", "MlpPolicy", "CartPole-v1", n_quantiles=n, double_q=double_q, **SMALL)
    with th.no_grad():  # make the target network disagree with the online one
        for p in model.q_net_target.parameters():
            p.add_(0.3 * th.randn_like(p))
    data = _batch(model.device)
    with th.random.fork_rng(devices=range(th.cuda.device_count())):  # the draws repeat after the block
        losses, q_taken, errors = model._quantile_terms(data)
    batch = data.rewards.shape[0]
    with th.no_grad():
        # the same draws, in the same order: target fractions, (online K for double Q), online fractions
        target_taus = model.q_net_target.sample_taus(batch, n)
        next_quantiles = model.q_net_target.head_output(data.next_observations, taus=target_taus).cpu().numpy()
        choosing = model.q_net(data.next_observations).cpu().numpy() if double_q else next_quantiles.mean(axis=-1)
        taus = model.q_net.sample_taus(batch, n)
        quantiles = model.q_net.head_output(data.observations, taus=taus).cpu().numpy()
    taus = taus.cpu().numpy()
    r, d, g = (x.cpu().numpy()[:, 0] for x in (data.rewards, data.dones, data.discounts))
    a = data.actions.cpu().numpy()[:, 0]
    expected = np.zeros((batch, n))
    for b in range(batch):
        a_star = choosing[b].argmax()
        for j in range(n):
            target = r[b] + (1 - d[b]) * g[b] * next_quantiles[b, a_star, j]
            for i in range(n):
                delta = target - quantiles[b, a[b], i]
                huber = 0.5 * delta**2 if abs(delta) <= 1 else abs(delta) - 0.5
                expected[b, j] += abs(taus[b, i] - (delta < 0)) * huber
    np.testing.assert_allclose(losses.detach().cpu().numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(errors.cpu().numpy(), expected.mean(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(q_taken.cpu().numpy(), quantiles[np.arange(batch), a].mean(axis=1), rtol=1e-5)


@pytest.mark.parametrize("preset", ["qr", "iqn", "rainbow-iqn"])
def test_prioritized_quantile_heads_weight_each_sample_and_prioritize_by_its_loss(preset: str) -> None:
    """The update's loss is mean_b w_b * mean_j L_bj, and the new priority of a sample is its loss mean_j L_bj."""
    model = Rainbow.from_preset(preset, "MlpPolicy", "CartPole-v1", prioritized=True, noisy=False, **SMALL)
    data = _batch(model.device)
    weights = th.tensor([1.0, 0.5, 0.25, 1.0, 0.1, 0.8], device=model.device)
    with th.random.fork_rng(devices=range(th.cuda.device_count())):  # the draws repeat after the block
        losses, _, errors = model._quantile_terms(data)
    q_before = [p.detach().clone() for p in model.q_net.parameters()]
    model.policy.optimizer = th.optim.SGD(model.q_net.parameters(), lr=1.0)
    model._train_stats.zero_()
    returned = model._gradient_step(data, weights)
    th.testing.assert_close(returned, errors)
    expected_loss = (weights[:, None] * losses.detach()).mean()
    th.testing.assert_close(model._train_stats[0], expected_loss)
    assert any(not th.equal(a, b) for a, b in zip(q_before, model.q_net.parameters(), strict=True))
