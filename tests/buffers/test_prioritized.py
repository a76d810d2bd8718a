"""Prioritized replay: sampling statistics, weights, priorities, n-step equality with SB3, resumption."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from scipy import stats
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer

from rainbow_ext import PrioritizedReplayBuffer, Rainbow
from rainbow_ext.buffers.sum_tree import SumTree

OBS = spaces.Box(-10, 10, shape=(2,), dtype=np.float32)
ACT = spaces.Discrete(3)


def filled_buffer(size: int, n_envs: int, steps: int, seed: int = 0, cls=PrioritizedReplayBuffer, **kwargs):
    """A buffer after ``steps`` add calls of random transitions; episodes end at random (some by timeout)."""
    rng = np.random.default_rng(seed)
    buffer = cls(size, OBS, ACT, device="cpu", n_envs=n_envs, **kwargs)
    for _ in range(steps):
        done = rng.random(n_envs) < 0.2
        timeout = done & (rng.random(n_envs) < 0.3)
        buffer.add(
            rng.normal(size=(n_envs, 2)).astype(np.float32),
            rng.normal(size=(n_envs, 2)).astype(np.float32),
            rng.integers(0, 3, size=(n_envs, 1)),
            rng.normal(size=n_envs).astype(np.float32),
            done,
            [{"TimeLimit.truncated": bool(t)} for t in timeout],
        )
    return buffer


@pytest.mark.parametrize("n_envs", [1, 4])
def test_sampling_frequencies_match_priorities(n_envs: int) -> None:
    buffer = filled_buffer(64, n_envs, 64 // n_envs, alpha=0.7)
    slots = np.arange(64)
    priorities = np.random.default_rng(1).uniform(0.0, 5.0, size=64)
    buffer.update_priorities(slots, priorities)
    expected = (priorities + buffer.eps) ** 0.7
    expected /= expected.sum()

    np.random.seed(0)
    counts = np.zeros(64)
    draws = 0
    for _ in range(400):
        samples = buffer.sample(100)
        np.add.at(counts, samples.indices, 1)
        draws += 100
        # Every index names its (time, env) slot: the stored observation is the one returned.
        t, e = np.divmod(samples.indices, n_envs)
        np.testing.assert_array_equal(samples.observations.numpy(), buffer.observations[t, e])
    _, p_value = stats.chisquare(counts, expected * draws)
    assert p_value > 1e-3
    # The same counts are far from uniform: the test can tell the two apart.
    _, p_uniform = stats.chisquare(counts, np.full(64, draws / 64))
    assert p_uniform < 1e-12


def test_stratified_draws_cover_every_segment() -> None:
    buffer = filled_buffer(8, 1, 8)
    buffer.update_priorities(np.arange(8), np.ones(8))  # equal mass per slot: segment i holds slot i
    np.random.seed(0)
    for _ in range(20):
        assert sorted(buffer.sample(8).indices) == list(range(8))


def test_importance_weights_closed_form() -> None:
    buffer = filled_buffer(4, 1, 4, alpha=1.0, beta=0.5, eps=1e-12)
    buffer.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    np.random.seed(0)
    samples = buffer.sample(4)  # stratified over mass 10: one draw in each of [0, 2.5), ..., [7.5, 10)
    p = np.array([1.0, 2.0, 3.0, 4.0])[samples.indices] / 10
    w = (4 * p) ** -0.5
    np.testing.assert_allclose(samples.weights.numpy(), w / w.max(), rtol=1e-6)
    assert samples.weights.max().item() == pytest.approx(1.0)
    assert samples.weights.shape == (4,)


def test_new_transitions_enter_at_running_max_and_wrap_around_resets() -> None:
    buffer = filled_buffer(4, 1, 4, alpha=1.0, eps=1e-6)
    np.testing.assert_allclose(buffer.tree[np.arange(4)], 1.0 + 1e-6)  # initial max priority 1
    buffer.update_priorities(np.array([0, 1]), np.array([7.0, 0.5]))
    assert buffer.max_priority == 7.0
    buffer.update_priorities(np.array([1]), np.array([0.1]))  # lower priorities do not lower the max
    assert buffer.max_priority == 7.0
    # Two more transitions overwrite slots 0 and 1 (wrap-around): both start at the max, 7.
    more = filled_buffer(4, 1, 2, seed=5)
    for i in range(2):
        buffer.add(
            more.observations[i], more.next_observations[i], more.actions[i], more.rewards[i], more.dones[i], [{}]
        )
    np.testing.assert_allclose(buffer.tree[np.arange(4)], [7.0 + 1e-6, 7.0 + 1e-6, 1.0 + 1e-6, 1.0 + 1e-6])
    assert buffer.tree.total == pytest.approx(16.0, abs=1e-4)


@pytest.mark.parametrize(("steps", "n_steps"), [(30, 3), (100, 3), (45, 2), (70, 5)])
def test_equal_priorities_give_sb3_n_step_returns(steps: int, n_steps: int) -> None:
    # Partly filled (30, 45) and wrapped around (70, 100) buffers of 48 time steps x 2 envs.
    ours = filled_buffer(96, 2, steps, n_steps=n_steps, gamma=0.9)
    sb3 = filled_buffer(96, 2, steps, cls=NStepReplayBuffer, n_steps=n_steps, gamma=0.9)
    batch_inds = np.arange(ours.size())
    np.random.seed(3)
    env_inds = np.random.randint(0, 2, size=batch_inds.shape)  # what SB3 draws inside _get_samples
    np.random.seed(3)
    expected = sb3._get_samples(batch_inds)
    got = ours._get_samples(batch_inds, env_indices=env_inds)
    for name in ("observations", "actions", "next_observations", "dones", "rewards", "discounts"):
        th.testing.assert_close(getattr(got, name), getattr(expected, name), msg=name)


@pytest.mark.parametrize("steps", [30, 100])
def test_one_step_samples_equal_sb3_replay_buffer(steps: int) -> None:
    ours = filled_buffer(96, 2, steps, n_steps=1)
    sb3 = filled_buffer(96, 2, steps, cls=ReplayBuffer)
    batch_inds = np.arange(ours.size())
    np.random.seed(4)
    env_inds = np.random.randint(0, 2, size=batch_inds.shape)  # what SB3 draws inside _get_samples
    np.random.seed(4)
    expected = sb3._get_samples(batch_inds)
    got = ours._get_samples(batch_inds, env_indices=env_inds)
    assert got.discounts is None and expected.discounts is None
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        th.testing.assert_close(getattr(got, name), getattr(expected, name), msg=name)


def test_n_step_one_is_a_plain_transition() -> None:
    buffer = filled_buffer(20, 1, 20, n_steps=1, gamma=0.9)
    samples = buffer._get_samples(np.arange(19), env_indices=np.zeros(19, dtype=int))
    np.testing.assert_allclose(samples.rewards.numpy()[:, 0], buffer.rewards[:19, 0])
    np.testing.assert_allclose(samples.next_observations.numpy(), buffer.next_observations[:19, 0])
    np.testing.assert_allclose(samples.dones.numpy()[:, 0], buffer.dones[:19, 0] * (1 - buffer.timeouts[:19, 0]))
    assert samples.discounts is None  # as SB3's ReplayBuffer: the learner applies gamma


def test_save_load_round_trip_resumes_sampling(tmp_path: Path) -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", learning_starts=50, buffer_size=500, seed=0).learn(300)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedReplayBuffer) and buffer.max_priority != 1.0
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.save(tmp_path / "model.zip")
    loaded = Rainbow.load(tmp_path / "model.zip", env=model.get_env())
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    restored = loaded.replay_buffer
    np.testing.assert_array_equal(restored.tree.tree, buffer.tree.tree)
    assert (restored.max_priority, restored.beta, restored.alpha) == (buffer.max_priority, buffer.beta, buffer.alpha)
    np.random.seed(1)
    a = buffer.sample(64)
    np.random.seed(1)
    b = restored.sample(64)
    np.testing.assert_array_equal(a.indices, b.indices)
    th.testing.assert_close(a.weights, b.weights)
    th.testing.assert_close(a.rewards, b.rewards)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(alpha=-0.1), r"alpha must lie in \[0, 1\]"),
        (dict(alpha=1.5), r"alpha must lie in \[0, 1\]"),
        (dict(beta=2.0), r"beta must lie in \[0, 1\]"),
        (dict(eps=0.0), "eps must be > 0"),
    ],
)
def test_bad_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrioritizedReplayBuffer(16, OBS, ACT, **kwargs)


@pytest.mark.parametrize(
    ("indices", "priorities", "message"),
    [
        ([0, 1], [1.0, -1.0], "priorities must be finite and >= 0"),
        ([0, 1], [1.0, np.nan], "finite and >= 0"),
        ([0, 1], [np.inf, 1.0], "finite and >= 0"),
        ([0, 12], [1.0, 1.0], r"indices out of range: must lie in \[0, 12\)"),
        ([-1], [1.0], "indices out of range"),
        ([0, 1, 2], [1.0, 1.0], "equal length"),
        ([0.5], [1.0], "indices must be integers"),
    ],
)
def test_bad_priority_updates_leave_the_buffer_unchanged(indices, priorities, message) -> None:
    buffer = filled_buffer(32, 2, 6)  # 12 of 32 slots filled
    buffer.update_priorities(np.array([3, 4]), np.array([2.0, 9.0]))
    before = (buffer.tree.tree.copy(), buffer.max_priority)
    with pytest.raises(ValueError, match=message):
        buffer.update_priorities(np.array(indices), np.array(priorities))
    np.testing.assert_array_equal(buffer.tree.tree, before[0])
    assert buffer.max_priority == before[1]
    with pytest.raises(ValueError, match="beta must lie"):
        buffer.beta = 1.5
    assert buffer.beta == 0.4


def test_sum_tree_never_returns_an_empty_leaf() -> None:
    tree = SumTree(5)  # a level of 8: leaves 5..7 are padding
    tree.update(np.arange(5), np.array([0.1, 0.0, 0.3, 0.2, 0.4]))
    leaves = tree.find(np.array([0.0, 0.1, 0.35, 0.999999999, tree.total, tree.total * (1 + 1e-12)]))
    assert leaves.max() < 5 and 1 not in leaves
    assert list(leaves[:3]) == [0, 2, 2]


@pytest.mark.parametrize("size", [1, 7, 8, 9, 64, 65, 1000, 4097])
def test_sum_tree_matches_cumulative_sums(size: int) -> None:
    rng = np.random.default_rng(size)
    values = rng.uniform(0, 3, size=size) * (rng.random(size) < 0.8)  # some empty leaves
    values[rng.integers(size)] = 1.0  # at least one non-empty
    tree = SumTree(size)
    tree.update(np.arange(size), values)
    assert tree.total == pytest.approx(values.sum())
    np.testing.assert_array_equal(tree[np.arange(size)], values)
    targets = rng.uniform(0, values.sum(), size=500)
    expected = np.searchsorted(np.cumsum(values), targets, side="right")
    np.testing.assert_array_equal(tree.find(targets), expected)
    # Updates of a few leaves (with a repeat: the last value wins) keep every sum right.
    tree.update(np.array([0, size - 1, 0]), np.array([5.0, 2.0, 4.0]))
    values[0], values[size - 1] = 4.0, 2.0
    if size == 1:
        values[0] = 4.0
    assert tree.total == pytest.approx(values.sum())
    np.testing.assert_array_equal(
        tree.find(targets * values.sum() / targets.max() * 0.999),
        np.searchsorted(np.cumsum(values), targets * values.sum() / targets.max() * 0.999, side="right"),
    )


def test_plain_sb3_dqn_runs_with_the_buffer() -> None:
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        replay_buffer_class=PrioritizedReplayBuffer,
        learning_starts=50,
        buffer_size=500,
        seed=0,
    ).learn(300)
    # DQN applies no weights and updates no priorities: every slot keeps the initial priority.
    buffer = model.replay_buffer
    np.testing.assert_allclose(buffer.tree[np.arange(buffer.size())], (1.0 + buffer.eps) ** buffer.alpha)


def test_rainbow_weights_losses_and_updates_priorities_with_them() -> None:
    model = Rainbow.from_preset(
        "per", "MlpPolicy", "CartPole-v1", learning_starts=64, buffer_size=1_000, n_steps=3, seed=0
    )
    model.learn(200)
    assert type(model.replay_buffer) is PrioritizedReplayBuffer
    assert (model.replay_buffer.n_steps, model.replay_buffer.gamma, model.replay_buffer.alpha) == (3, 0.99, 0.5)
    captured = {}
    sample, update = model.replay_buffer.sample, model.replay_buffer.update_priorities
    model.replay_buffer.sample = lambda *a, **k: captured.setdefault("samples", sample(*a, **k))
    model.replay_buffer.update_priorities = lambda i, p: (captured.update(indices=i, priorities=p), update(i, p))
    # The networks as they were when the loss was computed. (A state dict, not a deepcopy of the model:
    # on CUDA the model holds captured CUDA graphs, which cannot be copied.)
    before = copy.deepcopy(model.policy.state_dict())
    model.record_train_stats()  # logged statistics are means since the last record: start afresh
    model.train(gradient_steps=1, batch_size=32)
    model._apply_pending_priorities()  # CUDA graphs defer the update to the next step (nothing pending on the CPU)
    model.record_train_stats()

    samples = captured["samples"]
    # Sampled where the buffer lives (on the host when gradient steps are CUDA graphs): onto the model's device.
    on_device = samples._replace(
        **{name: x.to(model.device) for name, x in samples._asdict().items() if isinstance(x, th.Tensor)}
    )
    model.policy.load_state_dict(before)
    with th.no_grad():
        losses, _, errors = model._huber_terms(on_device)
    np.testing.assert_array_equal(captured["indices"], samples.indices)
    # |TD error| of each sampled transition (deferred priorities arrive as an array from pinned host memory)
    th.testing.assert_close(th.as_tensor(captured["priorities"], device=errors.device), errors)
    expected_tree = (errors.cpu().numpy() + 1e-6) ** 0.5
    np.testing.assert_allclose(model.replay_buffer.tree[samples.indices], expected_tree, rtol=1e-6)
    # The loss that was minimised is the importance-weighted mean.
    assert model.logger.name_to_value["train/loss"] == pytest.approx((on_device.weights * losses).mean().item())
    # beta follows the schedule 0.4 -> 1 over the run; at the end of learn(200) progress is complete.
    assert model.logger.name_to_value["train/per_beta"] == pytest.approx(1.0)
    model._current_progress_remaining = 0.75
    assert model._per_beta() == pytest.approx(0.4 + 0.6 * 0.25)
    # SB3 collects train_freq steps at a time, so progress can pass the end: beta stays at 1.
    model._current_progress_remaining = -0.01
    assert model._per_beta() == 1.0


def test_beta_stays_valid_when_training_overshoots_the_budget() -> None:
    model = Rainbow.from_preset("per", "MlpPolicy", "CartPole-v1", learning_starts=32, train_freq=64, seed=0)
    model.learn(100)  # collects 128 steps: progress remaining ends below 0
    assert model._current_progress_remaining < 0
    assert model.replay_buffer.beta == 1.0
