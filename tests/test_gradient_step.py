"""The gradient step as one static-shape function: it matches the train loop it replaced, logs
through device-side sums, keeps SB3's learning-rate schedule, and (with CUDA) replays as a CUDA graph
with the same numbers as the eager step and no host syncs."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update

from rainbow_ext import Rainbow, preset_flags
from rainbow_ext.losses import categorical_loss, categorical_projection, huber_loss

FILL = dict(learning_starts=300, buffer_size=2_000, batch_size=32, seed=3, target_update_interval=10_000)


def _filled(preset: str, **kwargs: Any) -> Rainbow:
    model = Rainbow("MlpPolicy", "CartPole-v1", **{**preset_flags(preset), **FILL, **kwargs})
    model.learn(300)  # random actions until learning_starts: a filled buffer, no update yet
    return model


def reference_train(model: Rainbow, gradient_steps: int, batch_size: int) -> None:
    """``Rainbow.train`` as it was before the step became one function: the loss terms written out,
    SB3's optimizer ``zero_grad`` and ``clip_grad_norm_``, logging through ``.item()`` at every call
    (left out here) and the priority update right after each step."""
    model.policy.set_training_mode(True)
    model._update_learning_rate(model.policy.optimizer)
    if model.prioritized:
        model.replay_buffer.beta = model._per_beta()
    optimized = [p for group in model.policy.optimizer.param_groups for p in group["params"]]
    q, target = model.q_net, model.q_net_target
    for _ in range(gradient_steps):
        data = model.replay_buffer.sample(batch_size)
        if model.noisy:
            model.policy.reset_noise()
        discounts = data.discounts if data.discounts is not None else model.gamma
        with th.no_grad():
            if model.distributional:
                next_logits = target.head_output(data.next_observations)
                chooser = q(data.next_observations) if model.double_q else target.q_values(next_logits)
                next_actions = chooser.argmax(dim=1, keepdim=True)
                n_atoms = q.support.shape[0]
                next_probs = next_logits.softmax(-1).gather(1, next_actions.unsqueeze(-1).expand(-1, 1, n_atoms))
                target_probs = categorical_projection(
                    next_probs.squeeze(1), data.rewards, data.dones, discounts, target.support
                )
            else:
                next_q_target = target(data.next_observations)
                chooser = q(data.next_observations) if model.double_q else next_q_target
                next_q = next_q_target.gather(1, chooser.argmax(dim=1, keepdim=True))
                targets = data.rewards + (1 - data.dones) * discounts * next_q
        if model.distributional:
            logits = q.head_output(data.observations)
            taken = logits.gather(1, data.actions.long().unsqueeze(-1).expand(-1, 1, q.support.shape[0])).squeeze(1)
            losses = categorical_loss(taken, target_probs)
            errors = losses.detach()
        else:
            q_taken = q(data.observations).gather(1, data.actions.long())
            losses = huber_loss(q_taken, targets)
            errors = (targets - q_taken).detach().abs().squeeze(1)
        loss = (data.weights * losses if model.prioritized else losses).mean()
        model.policy.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(optimized, model.max_grad_norm)
        model.policy.optimizer.step()
        if model.prioritized:
            model.replay_buffer.update_priorities(data.indices, errors)


def _params(model: Rainbow) -> list[th.Tensor]:
    return [t.detach().clone() for t in model.policy.state_dict().values()]


# The same kernels on the same numbers in the same order: bit for bit, for each component and all of them.
@pytest.mark.parametrize("preset", ["dqn", "double", "per", "c51", "noisy", "dueling", "nstep", "rainbow"])
def test_eager_step_matches_the_train_loop_it_replaced(preset: str) -> None:
    # On the CPU, whatever --device says: bit for bit is a CPU property (on CUDA, scatter_add_ adds with
    # atomics, and a graphed step reads its learning rate as float32).
    new, old = _filled(preset, device="cpu"), _filled(preset, device="cpu")
    for a, b in zip(_params(new), _params(old), strict=True):
        assert th.equal(a, b)
    for model, train in ((new, Rainbow.train), (old, reference_train)):
        np.random.seed(0)
        th.manual_seed(0)
        for _ in range(40):
            train(model, 2, 32)  # type: ignore[operator]
    for a, b in zip(_params(new), _params(old), strict=True):
        assert th.equal(a, b)
    if new.prioritized:
        np.testing.assert_array_equal(new.replay_buffer.tree.tree, old.replay_buffer.tree.tree)
    assert not th.equal(_params(new)[0], _params(_filled(preset, device="cpu"))[0])  # it did learn


def test_logged_statistics_are_means_over_the_steps_since_the_last_record() -> None:
    model = _filled("rainbow")
    model.record_train_stats()
    increments = []
    for _ in range(3):
        before = model._train_stats.clone()
        model.train(gradient_steps=1, batch_size=32)
        increments.append((model._train_stats - before).tolist())
    model.record_train_stats()
    expected = np.mean(increments, axis=0)
    logged = model.logger.name_to_value
    assert logged["train/loss"] == pytest.approx(expected[0])
    assert logged["train/q_mean"] == pytest.approx(expected[1])
    assert logged["train/cross_entropy"] == pytest.approx(expected[2])
    assert expected[0] > 0 and th.count_nonzero(model._train_stats) == 0 and model._train_stats_count == 0
    # Each step's loss is importance-weighted (weights in (0, 1]); its error is the unweighted mean
    # cross-entropy: the loss cannot exceed it.
    assert all(0 < loss <= error + 1e-6 for loss, _, error in increments)


class _Dumps(KVWriter):
    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.dumps.append(dict(key_values))


def test_train_statistics_reach_every_dump() -> None:
    model = _filled("rainbow")
    writer = _Dumps()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(600, log_interval=1, reset_num_timesteps=False)
    trained = [d for d in writer.dumps if "train/n_updates" in d]
    assert len(trained) > 3
    for dump in trained:
        assert isinstance(dump["train/loss"], float) and np.isfinite(dump["train/loss"]) and dump["train/loss"] > 0
        assert {"train/q_mean", "train/cross_entropy", "train/per_beta", "train/learning_rate"} <= set(dump)


def test_cuda_graphs_option() -> None:
    assert Rainbow("MlpPolicy", "CartPole-v1").cuda_graphs is None
    with pytest.raises(ValueError, match="cuda_graphs must be one of True, False, or None"):
        Rainbow("MlpPolicy", "CartPole-v1", cuda_graphs="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        Rainbow("MlpPolicy", "CartPole-v1", cuda_graphs=True, device="cpu")
    model = Rainbow("MlpPolicy", "CartPole-v1", cuda_graphs=False)
    assert not model.graphed and model._graphed_step is None and model.policy._act_graphs is None


def test_cuda_graphs_choice_is_saved(tmp_path: Any) -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", cuda_graphs=False, device="cpu")
    model.save(tmp_path / "model")
    assert Rainbow.load(tmp_path / "model").cuda_graphs is False


def test_learning_rate_kept_in_a_tensor_is_filled_in_place() -> None:
    model = _filled("rainbow", learning_rate=lambda progress: 1e-3 * progress)
    group = model.policy.optimizer.param_groups[0]
    lr = group["lr"] = th.tensor(5.0, device=model.device)
    model._current_progress_remaining = 0.25
    model._update_learning_rate(model.policy.optimizer)
    assert group["lr"] is lr and lr.item() == pytest.approx(2.5e-4)


def test_a_model_saved_with_a_graph_ready_optimizer_trains_eagerly(tmp_path: Any) -> None:
    """A model saved from a CUDA-graph run carries capturable=True and a tensor learning rate in its
    optimizer's parameter groups; where it is loaded without graphs they go back to what eager wants."""
    model = _filled("rainbow", device="cpu")
    model.train(gradient_steps=1, batch_size=32)
    for group in model.policy.optimizer.param_groups:
        group["lr"], group["capturable"] = th.tensor(float(group["lr"])), True
    model.save(tmp_path / "model")
    loaded = Rainbow.load(tmp_path / "model", env=model.env, device="cpu")
    loaded.replay_buffer = model.replay_buffer
    loaded.set_logger(Logger(folder=None, output_formats=[]))
    before = _params(loaded)
    loaded.train(gradient_steps=2, batch_size=32)
    group = loaded.policy.optimizer.param_groups[0]
    assert isinstance(group["lr"], float) and group["capturable"] is False
    assert not th.equal(before[0], _params(loaded)[0])


# ---------------------------------------------------------------------------------------------
# CUDA only: graph replay, its invalidation, and the absence of host syncs.

GRAPH_SETUP = dict(learning_starts=300, buffer_size=2_000, batch_size=32, seed=5, target_update_interval=10_000)


def _cuda_pair(**kwargs: Any) -> tuple[Rainbow, Rainbow]:
    models = []
    for graphs in (True, False):
        model = Rainbow("MlpPolicy", "CartPole-v1", device="cuda", cuda_graphs=graphs, **{**GRAPH_SETUP, **kwargs})
        model.learn(300)
        models.append(model)
    return models[0], models[1]


def _train_both(graphed: Rainbow, eager: Rainbow, steps: int) -> None:
    for model in (graphed, eager):
        np.random.seed(1)
        th.manual_seed(1)
        model.train(gradient_steps=steps, batch_size=32)
    th.cuda.synchronize()


def _assert_same_params(a: Rainbow, b: Rainbow, **tolerance: float) -> None:
    for x, y in zip(_params(a), _params(b), strict=True):
        th.testing.assert_close(x, y, **tolerance)


@pytest.mark.cuda
@pytest.mark.parametrize("preset", ["rainbow-no-per", "dqn"])
def test_graph_replay_equals_eager_after_200_updates(preset: str) -> None:
    # Uniform sampling: the graphed run applies priorities one step late, which changes the batches.
    graphed, eager = _cuda_pair(**preset_flags(preset))
    assert graphed._graphed_step is not None and eager._graphed_step is None
    _train_both(graphed, eager, 200)
    assert graphed._graphed_step.captures == 1
    _assert_same_params(graphed, eager, rtol=1e-4, atol=1e-5)
    graphed.record_train_stats()
    eager.record_train_stats()


@pytest.mark.cuda
def test_graphed_prioritized_replay_updates_priorities_one_step_late() -> None:
    graphed, _ = _cuda_pair()
    graphed.train(gradient_steps=5, batch_size=32)
    assert graphed._pending_priorities is None  # train applies the last step's before it returns
    buffer = graphed.replay_buffer
    data = buffer.sample(32)
    batch = ReplayBufferSamples(*data[:5], discounts=data.discounts)
    errors = graphed._graphed_step(batch, data.weights)
    before = buffer.tree[data.indices].copy()
    graphed._defer_priorities(data.indices, errors)
    np.testing.assert_array_equal(buffer.tree[data.indices], before)  # not yet
    graphed._apply_pending_priorities()
    expected = (errors.cpu().numpy().astype(np.float64) + graphed.per_eps) ** graphed.per_alpha
    np.testing.assert_allclose(buffer.tree[data.indices], expected, rtol=1e-6)
    assert not np.allclose(before, expected)


@pytest.mark.cuda
def test_target_sync_load_and_lr_schedule_reach_the_graph(tmp_path: Any) -> None:
    graphed, eager = _cuda_pair(**preset_flags("rainbow-no-per"))
    _train_both(graphed, eager, 10)
    # SB3's target sync writes in place: the captured step sees the new target.
    for model in (graphed, eager):
        polyak_update(model.q_net.parameters(), model.q_net_target.parameters(), 1.0)
    _train_both(graphed, eager, 10)
    _assert_same_params(graphed, eager, rtol=1e-4, atol=1e-5)
    # set_parameters / load_state_dict copy in place; the graph trains the loaded weights.
    other = copy.deepcopy(eager.policy.state_dict())
    with th.no_grad():
        for t in other.values():
            t.add_(0.01)
    for model in (graphed, eager):
        model.policy.load_state_dict(other)
    _train_both(graphed, eager, 10)
    _assert_same_params(graphed, eager, rtol=1e-4, atol=1e-5)
    # save/load: the optimizer's state is replaced (new tensors): captured again, same numbers.
    graphed.save(tmp_path / "graphed")
    eager.save(tmp_path / "eager")
    graphed2 = Rainbow.load(tmp_path / "graphed", env=graphed.env, device="cuda")
    eager2 = Rainbow.load(tmp_path / "eager", env=eager.env, device="cuda")
    graphed2.replay_buffer, eager2.replay_buffer = graphed.replay_buffer, eager.replay_buffer
    graphed2.replay_buffer.device = th.device("cpu")
    for model in (graphed2, eager2):
        model.set_logger(Logger(folder=None, output_formats=[]))
    _train_both(graphed2, eager2, 10)
    _assert_same_params(graphed2, eager2, rtol=1e-4, atol=1e-5)
    # The learning rate lives in a device tensor that the schedule fills: lr 0 leaves the weights.
    graphed.lr_schedule = lambda _: 0.0
    before = _params(graphed)
    graphed.train(gradient_steps=5, batch_size=32)
    for x, y in zip(before, _params(graphed), strict=True):
        assert th.equal(x, y)
    # A new batch size is captured anew.
    captures = graphed._graphed_step.captures
    graphed.train(gradient_steps=1, batch_size=16)
    assert graphed._graphed_step.captures == captures + 1
    assert len(graphed._graphed_step.graphs) == 2  # a second signature, not a cache cleared


@pytest.mark.cuda
@pytest.mark.parametrize("preset", ["rainbow", "dqn"])
def test_gradient_step_makes_no_host_sync(preset: str) -> None:
    graphed, _ = _cuda_pair(**preset_flags(preset))
    graphed.train(gradient_steps=2, batch_size=32)  # optimizer state exists, capturable, lr in a tensor
    data = graphed.replay_buffer.sample(32)
    batch = ReplayBufferSamples(
        *(t.to("cuda") for t in data[:5]),
        discounts=th.full((32, 1), graphed.gamma, device="cuda") if data.discounts is None else data.discounts.cuda(),
    )
    weights = data.weights.cuda() if graphed.prioritized else None
    (entry,) = graphed._graphed_step.graphs.values()
    th.cuda.synchronize()
    th.cuda.set_sync_debug_mode("error")
    try:
        graphed._gradient_step(batch, weights)  # eager, on device tensors
        entry.graph.replay()
    finally:
        th.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
def test_acting_graph_equals_eager_and_shares_the_noise() -> None:
    model = Rainbow("MlpPolicy", "CartPole-v1", device="cuda", seed=0, n_steps=1, **{"learning_starts": 0})
    obs = np.stack([model.observation_space.sample() for _ in range(1)])
    for deterministic in (True, False):
        graphed, _ = model.policy.predict(obs, deterministic=deterministic)
        with th.no_grad():
            eager = model.q_net._predict(th.as_tensor(obs, device="cuda"), deterministic=deterministic)
        np.testing.assert_array_equal(graphed, eager.cpu().numpy())
    # Fresh noise reaches the captured forward: stochastic actions follow the noise sample.
    changed = False
    for _ in range(20):
        model.policy.reset_noise()
        with th.no_grad():
            eager = model.q_net._predict(th.as_tensor(obs, device="cuda"), deterministic=False)
        graphed, _ = model.policy.predict(obs, deterministic=False)
        np.testing.assert_array_equal(graphed, eager.cpu().numpy())
        changed |= bool((eager != model.q_net._predict(th.as_tensor(obs, device="cuda"), True)).any())
    assert changed


def test_gradients_keep_their_addresses_only_when_a_graph_replays_the_step() -> None:
    """Eagerly, gradients are set to None before backward (as SB3's zero_grad); when the step is a CUDA
    graph they are zeroed in place, from the very first step, which has no gradients yet."""
    model = Rainbow("MlpPolicy", "CartPole-v1", learning_starts=50, buffer_size=500, cuda_graphs=False, seed=0)
    model.learn(100)
    data = model.replay_buffer.sample(16)
    batch, weights = ReplayBufferSamples(*data[:6]), data.weights
    params = model._optimized()

    def step() -> list[int]:
        model._gradient_step(batch, weights)
        return [p.grad.data_ptr() for p in params]

    step()
    held = [p.grad for p in params]  # a graph would hold these; an eager step writes new ones
    step()
    assert not any(h is p.grad for h, p in zip(held, params, strict=True))
    model._graphed_step = object()  # as on a GPU: the step is (or will be) replayed as a graph
    for p in params:
        p.grad = None  # the first step of a run, or the capture's warm-up after a load
    first = step()
    assert step() == first  # zeroed in place


def test_noisy_weights_built_once_per_step_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradient step builds each network's noisy weights once for all its passes (one multi-tensor
    kernel); each layer building its own in every pass gives the same parameters, bit for bit."""
    import contextlib

    import rainbow_ext.rainbow as rainbow_module
    from rainbow_ext.layers import noisy_layers

    def trained(build_once: bool) -> Rainbow:
        if not build_once:
            monkeypatch.setattr(rainbow_module, "built_noisy_weights", lambda *_, **__: contextlib.nullcontext())
        # Without C51: its projection adds with atomics on a GPU (scatter_add_), so two C51 runs differ there
        # in the last bits whatever builds the weights; the noisy layers are the same with any loss.
        model = Rainbow("MlpPolicy", "CartPole-v1", distributional=False, learning_starts=100, buffer_size=1_000,
                        train_freq=1, target_update_interval=50, cuda_graphs=False, seed=5).learn(400)  # fmt: skip
        monkeypatch.undo()
        return model

    once, per_pass = trained(True), trained(False)
    assert once._n_updates == per_pass._n_updates == 300
    for a, b in zip(once.policy.state_dict().values(), per_pass.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    assert all(layer.built is None for layer in noisy_layers(once.policy))  # nothing left behind
