"""Noisy nets (Fortunato et al. 2018): the layer itself, and noise that survives SB3's mode switches."""

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import KVWriter, Logger

from rainbow_ext import NoisyLinear, Rainbow
from rainbow_ext.layers import noise_disabled, noisy_layers

SMALL = dict(
    learning_starts=50,
    buffer_size=1_000,
    train_freq=4,
    target_update_interval=50,
    seed=1,
    policy_kwargs=dict(net_arch=[16]),
)


def test_initialisation_follows_the_paper() -> None:
    th.manual_seed(0)
    layer = NoisyLinear(100, 30, sigma0=0.5)
    bound = 1 / math.sqrt(100)
    assert layer.weight_mu.abs().max() <= bound and layer.bias_mu.abs().max() <= bound
    assert layer.weight_mu.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # uniform's std
    th.testing.assert_close(layer.weight_sigma, th.full((30, 100), 0.5 * bound))
    th.testing.assert_close(layer.bias_sigma, th.full((30,), 0.5 * bound))


def test_noise_shapes_and_factorisation() -> None:
    th.manual_seed(0)
    layer = NoisyLinear(5, 3)
    assert layer.eps_in.shape == (5,) and layer.eps_out.shape == (3,)
    x = th.randn(7, 5)
    y = layer(x)
    assert y.shape == (7, 3)
    weight = layer.weight_mu + layer.weight_sigma * th.outer(layer.eps_out, layer.eps_in)
    bias = layer.bias_mu + layer.bias_sigma * layer.eps_out
    th.testing.assert_close(y, x @ weight.T + bias)
    # Noise is not part of the saved state.
    assert set(layer.state_dict()) == {"weight_mu", "weight_sigma", "bias_mu", "bias_sigma"}


@pytest.mark.parametrize(
    ("in_features", "out_features", "rows", "factorised"),
    [
        (5, 3, 1, False),
        (256, 255, 1, False),  # one weight under the size threshold
        (256, 256, 1, True),  # square: a transposed eps_w would show
        (300, 256, 2, False),  # two rows: the noisy weight
        (3136, 512, 1, True),
    ],
)
def test_both_forms_of_the_forward_pass_match_the_closed_form(
    in_features: int, out_features: int, rows: int, factorised: bool
) -> None:
    """Outputs and gradients of y = (mu_w + sigma_w * eps_out eps_in^T) x + mu_b + sigma_b * eps_out,
    for both ways forward computes it (the noisy weight, or the factorised products), after a redraw."""
    th.manual_seed(0)
    layer = NoisyLinear(in_features, out_features)
    layer.reset_noise()
    x = th.randn(rows, in_features, requires_grad=True)
    assert layer.factorised_form(x) == factorised
    assert layer.factorised_form(x.view(rows, 1, in_features)) == factorised  # rows, whatever the leading dims
    y = layer(x)
    grads = th.autograd.grad((y * th.linspace(-1, 1, out_features)).sum(), [x, *layer.parameters()])

    x_ref = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    weight_mu, weight_sigma, bias_mu, bias_sigma = params
    weight = weight_mu + weight_sigma * th.outer(layer.eps_out, layer.eps_in)
    y_ref = x_ref @ weight.T + bias_mu + bias_sigma * layer.eps_out
    grads_ref = th.autograd.grad((y_ref * th.linspace(-1, 1, out_features)).sum(), [x_ref, *params])
    th.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        th.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)


def test_acting_on_one_observation_matches_the_batched_forward_pass() -> None:
    """With 256-unit layers, acting on one observation takes the factorised form and a batch the
    noisy weight; both give the same Q-values with the same noise, online and target network."""
    options = {**SMALL, "policy_kwargs": dict(net_arch=[256, 256])}
    model = Rainbow.from_preset("rainbow", "MlpPolicy", "CartPole-v1", **options)
    model.learn(200)
    model.policy.reset_noise()
    obs = th.as_tensor(model.env.observation_space.sample(), device=model.device).unsqueeze(0)
    for net in (model.q_net, model.q_net_target):
        # Asked of a row on the CPU, where the factorised form applies (on a GPU, forward always builds the weight).
        assert any(layer.factorised_form(th.zeros(1, layer.in_features)) for layer in noisy_layers(net))
        with th.no_grad():
            th.testing.assert_close(net(obs)[0], net(obs.expand(3, -1))[0], rtol=1e-5, atol=1e-5)


def test_noise_distribution_is_signed_sqrt_of_gaussian() -> None:
    # f(x) = sign(x) sqrt(|x|) with x ~ N(0, 1): E f = 0, E f^2 = E|x| = sqrt(2 / pi).
    th.manual_seed(0)
    layer = NoisyLinear(20_000, 1)
    eps = layer.eps_in.numpy()
    assert abs(eps.mean()) < 4 * math.sqrt(math.sqrt(2 / math.pi) / 20_000)
    assert (eps**2).mean() == pytest.approx(math.sqrt(2 / math.pi), rel=0.03)


def test_reset_noise_draws_fresh_noise() -> None:
    th.manual_seed(0)
    layer = NoisyLinear(4, 4)
    x = th.ones(1, 4)
    before, eps_before = layer(x), layer.eps_in.clone()
    layer.reset_noise()
    assert not th.equal(eps_before, layer.eps_in)
    assert not th.allclose(before, layer(x))


def test_noise_ignores_training_mode_and_switches_off_explicitly() -> None:
    th.manual_seed(0)
    layer = NoisyLinear(4, 4)
    x = th.ones(1, 4)
    mean_output = x @ layer.weight_mu.T + layer.bias_mu
    layer.eval()
    assert not th.allclose(layer(x), mean_output)  # eval mode keeps the noise
    with noise_disabled(layer):
        th.testing.assert_close(layer(x), mean_output)
    assert layer.noise_enabled


def test_deterministic_predict_is_repeatable_and_noiseless() -> None:
    model = Rainbow.from_preset("noisy", "MlpPolicy", "CartPole-v1", **SMALL)
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    first, _ = model.predict(obs, deterministic=True)
    for _ in range(3):
        model.policy.reset_noise()
        again, _ = model.predict(obs, deterministic=True)
        np.testing.assert_array_equal(first, again)
    with th.no_grad(), noise_disabled(model.q_net):
        mean_net_actions = model.q_net(th.as_tensor(obs, device=model.device)).argmax(dim=1).cpu().numpy()
    np.testing.assert_array_equal(first, mean_net_actions)
    # Stochastic predictions use the noise: some actions change across noise samples.
    changed = []
    for _ in range(10):
        model.policy.reset_noise()
        actions, _ = model.predict(obs, deterministic=False)
        changed.append((actions != first).any())
    assert any(changed)
    assert model.exploration_rate == 0.0  # noisy nets replace epsilon-greedy


def _record_noise(model: Rainbow, network: th.nn.Module, log: list) -> list:
    """Record, at every forward of the network's first noisy layer, whether noise was applied and
    which noise sample (eps_in), together with whether the policy was in training mode."""
    layer = noisy_layers(network)[0]

    def hook(module: NoisyLinear, inputs: tuple, output: th.Tensor) -> None:
        mean_output = th.nn.functional.linear(inputs[0], module.weight_mu, module.bias_mu)
        log.append((model.policy.training, not th.allclose(output, mean_output), module.eps_in.clone()))

    return [layer.register_forward_hook(hook)]


def test_noise_is_on_while_collecting_and_in_target_computation() -> None:
    # Eager (cuda_graphs=False; the same as the default on the CPU): a replayed CUDA graph runs no forward hooks.
    options = {**SMALL, "double_q": True, "cuda_graphs": False}
    model = Rainbow.from_preset("noisy", "MlpPolicy", "CartPole-v1", **options)
    online, target = [], []
    handles = _record_noise(model, model.q_net, online) + _record_noise(model, model.q_net_target, target)
    model.learn(400)
    for handle in handles:
        handle.remove()

    collecting = [noisy for training, noisy, _ in online if not training]
    assert len(collecting) > 100 and all(collecting)  # SB3 collects in eval mode; noise stays on
    assert len(target) > 50 and all(noisy for _, noisy, _ in target)
    # Fresh target noise at every gradient step.
    target_eps = [eps for _, _, eps in target]
    assert all(not th.equal(a, b) for a, b in itertools.pairwise(target_eps))
    # Online and target noise are drawn independently.
    training_eps = [eps for training, _, eps in online if training]
    assert not any(th.equal(a, b) for a, b in zip(training_eps[::2], target_eps, strict=True))


class SigmaRecorder(KVWriter):
    """Keeps each dump's ``train/noise_sigma_mean`` beside the network's value at that moment."""

    def __init__(self, model: Rainbow) -> None:
        self.model = model
        self.pairs: list[tuple[float, float]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.pairs.append((key_values["train/noise_sigma_mean"], self.model.q_net.noise_sigma_mean()))


def test_noise_scale_is_logged_and_learned() -> None:
    model = Rainbow.from_preset("noisy", "MlpPolicy", "CartPole-v1", **SMALL)
    recorder = SigmaRecorder(model)
    model.set_logger(Logger(folder=None, output_formats=[recorder]))
    initial = model.q_net.noise_sigma_mean()
    model.learn(400, log_interval=1)
    assert len(recorder.pairs) > 1  # with every dump
    for logged, current in recorder.pairs:
        assert logged == pytest.approx(current)
    assert recorder.pairs[-1][0] != initial  # sigma is a learned parameter


def test_sigma0_scales_the_noise() -> None:
    for sigma0 in (0.1, 1.0):
        model = Rainbow.from_preset("noisy", "MlpPolicy", "CartPole-v1", noisy_sigma0=sigma0, **SMALL)
        first = noisy_layers(model.q_net)[0]
        th.testing.assert_close(first.weight_sigma, th.full_like(first.weight_sigma, sigma0 / 2))  # p = 4 inputs
