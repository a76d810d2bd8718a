"""C51 projection (Bellemare et al. 2017, Algorithm 1) against hand-computed cases and a reference."""

import numpy as np
import pytest
import torch as th

from rainbow_ext.losses import categorical_loss, categorical_projection, quantile_huber_loss

SUPPORT3 = th.tensor([-1.0, 0.0, 1.0])


def project(next_probs, rewards, dones, discounts, support=SUPPORT3) -> np.ndarray:
    t = lambda x: th.as_tensor(x, dtype=th.float32)  # noqa: E731
    return categorical_projection(
        t(next_probs), t(rewards), t(dones), t(discounts) if not np.isscalar(discounts) else discounts, support
    ).numpy()


def test_terminal_between_atoms_splits_linearly() -> None:
    out = project([[0.2, 0.5, 0.3]], [[0.25]], [[1.0]], 0.9)
    np.testing.assert_allclose(out, [[0.0, 0.75, 0.25]], atol=1e-6)


def test_target_exactly_on_atom_keeps_all_mass() -> None:
    # floor(b) == ceil(b): the naive two-sided update would drop this mass.
    out = project([[0.2, 0.5, 0.3]], [[0.0]], [[1.0]], 0.9)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.0]], atol=1e-6)
    out = project([[0.2, 0.5, 0.3]], [[1.0]], [[1.0]], 0.9)  # on v_max: the top atom
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0]], atol=1e-6)
    out = project([[0.2, 0.5, 0.3]], [[-1.0]], [[1.0]], 0.9)  # on v_min
    np.testing.assert_allclose(out, [[1.0, 0.0, 0.0]], atol=1e-6)


def test_targets_beyond_support_are_clipped() -> None:
    out = project([[0.2, 0.5, 0.3]] * 2, [[5.0], [-7.0]], [[0.0], [0.0]], 0.9)
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], atol=1e-6)


def test_bootstrapped_case() -> None:
    # Tz = 0 + 0.5 * [-1, 0, 1] = [-0.5, 0, 0.5]:
    # -0.5 -> half of 0.2 to each of atoms -1 and 0; 0 -> 0.5 on atom 0; 0.5 -> half of 0.3 to atoms 0 and 1.
    out = project([[0.2, 0.5, 0.3]], [[0.0]], [[0.0]], 0.5)
    np.testing.assert_allclose(out, [[0.1, 0.75, 0.15]], atol=1e-6)


def test_terminal_ignores_next_distribution() -> None:
    a = project([[1.0, 0.0, 0.0]], [[0.5]], [[1.0]], 0.99)
    b = project([[0.0, 0.0, 1.0]], [[0.5]], [[1.0]], 0.99)
    np.testing.assert_allclose(a, [[0.0, 0.5, 0.5]], atol=1e-6)
    np.testing.assert_allclose(a, b)


def test_per_sample_n_step_discounts() -> None:
    # The same next distribution with gamma^3 for the first sample and gamma^1 (episode cut short) for the second.
    support = th.linspace(-10, 10, 21)  # atoms 1 apart
    probs = np.zeros((2, 21), dtype=np.float32)
    probs[:, 20] = 1.0  # all mass on z = 10
    gamma = 0.9
    out = project(probs, [[1.0], [1.0]], [[0.0], [0.0]], [[gamma**3], [gamma]], support)
    # 1 + 0.729 * 10 = 8.29 -> 0.71 on atom 8, 0.29 on atom 9; 1 + 0.9 * 10 = 10 -> atom 10.
    expected = np.zeros((2, 21))
    expected[0, 18], expected[0, 19] = 0.71, 0.29
    expected[1, 20] = 1.0
    np.testing.assert_allclose(out, expected, atol=1e-5)


def reference_projection(probs, rewards, dones, discounts, support) -> np.ndarray:
    """Per-element loop over atoms, as written in the paper."""
    n = len(support)
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / (n - 1)
    out = np.zeros_like(probs, dtype=np.float64)
    for i in range(probs.shape[0]):
        for j in range(n):
            tz = min(max(rewards[i] + (1 - dones[i]) * discounts[i] * support[j], v_min), v_max)
            b = (tz - v_min) / dz
            lo, hi = int(np.floor(b)), int(np.ceil(b))
            if lo == hi:
                out[i, lo] += probs[i, j]
            else:
                out[i, lo] += probs[i, j] * (hi - b)
                out[i, hi] += probs[i, j] * (b - lo)
    return out


@pytest.mark.parametrize("n_atoms", [2, 11, 51])
def test_matches_reference_and_preserves_mass(n_atoms: int) -> None:
    rng = np.random.default_rng(n_atoms)
    batch = 64
    support = np.linspace(-10, 10, n_atoms)
    probs = rng.dirichlet(np.ones(n_atoms), size=batch)
    rewards = rng.normal(0, 6, size=batch)
    rewards[:8] = np.round(rewards[:8])  # some targets land exactly on atoms
    dones = (rng.random(batch) < 0.3).astype(np.float64)
    discounts = 0.99 ** rng.integers(1, 4, size=batch)
    out = project(probs, rewards[:, None], dones[:, None], discounts[:, None], th.as_tensor(support, dtype=th.float32))
    expected = reference_projection(probs, rewards, dones, discounts, support)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert (out >= -1e-7).all()


def test_cross_entropy_closed_form() -> None:
    logits = th.log(th.tensor([[0.25, 0.25, 0.5]]))
    target = th.tensor([[0.0, 0.5, 0.5]])
    expected = -(0.5 * np.log(0.25) + 0.5 * np.log(0.5))
    np.testing.assert_allclose(categorical_loss(logits, target).numpy(), [expected], rtol=1e-6)


# The quantile Huber loss (kappa = 1): rho_tau(delta) = |tau - 1{delta < 0}| * L(delta), delta = target - theta,
# with L(d) = d^2 / 2 for |d| <= 1 and |d| - 1/2 beyond.
@pytest.mark.parametrize(
    ("tau", "delta", "expected"),
    [
        (0.25, 2.0, 0.25 * 1.5),  # under-estimate, linear part: weight tau
        (0.25, -2.0, 0.75 * 1.5),  # over-estimate by as much: weight 1 - tau, three times the loss
        (0.25, 0.5, 0.25 * 0.125),  # quadratic part
        (0.25, -0.5, 0.75 * 0.125),
        (0.9, 3.0, 0.9 * 2.5),
        (0.9, -3.0, 0.1 * 2.5),
        (0.5, 1.0, 0.5 * 0.5),  # the kink: both pieces give 1/2
        (0.3, 0.0, 0.0),
    ],
)
def test_quantile_huber_loss_closed_form(tau: float, delta: float, expected: float) -> None:
    loss = quantile_huber_loss(th.tensor([[0.0]]), th.tensor([[delta]]), th.tensor([[[tau]]]))
    assert loss.shape == (1, 1)
    assert loss.item() == pytest.approx(expected)


def test_quantile_huber_loss_sums_over_current_quantiles_per_target_sample() -> None:
    rng = np.random.default_rng(0)
    current, target, taus = rng.normal(size=(3, 4)), rng.normal(size=(3, 5)), rng.uniform(size=(3, 4))
    loss = quantile_huber_loss(th.tensor(current), th.tensor(target), th.tensor(taus).unsqueeze(-1)).numpy()
    assert loss.shape == (3, 5)
    for b in range(3):
        for j in range(5):
            total = 0.0
            for i in range(4):
                d = target[b, j] - current[b, i]
                huber = 0.5 * d * d if abs(d) <= 1 else abs(d) - 0.5
                total += abs(taus[b, i] - (d < 0)) * huber
            assert loss[b, j] == pytest.approx(total)


def test_quantile_huber_loss_minimum_is_the_quantile() -> None:
    """Minimising the mean loss over a fixed sample moves theta to (about) the sample's tau-quantile: the
    asymmetry is what makes it a quantile regression, not a mean."""
    # uniform on [-300, 300]: spread far beyond kappa = 1, where the Huber loss is the absolute error
    sample = th.linspace(-300.0, 300.0, 601).unsqueeze(0)
    for tau in (0.1, 0.5, 0.8):
        theta = th.zeros(1, 1, requires_grad=True)
        optimizer = th.optim.SGD([theta], lr=50.0)
        for _ in range(1000):
            optimizer.zero_grad()
            quantile_huber_loss(theta, sample, th.tensor([[[tau]]])).mean().backward()
            optimizer.step()
        # within about kappa (and the step) of the quantile; the mean (0) is 60 and more away for tau != 0.5
        assert theta.item() == pytest.approx(-300.0 + 600.0 * tau, abs=2.0), tau
