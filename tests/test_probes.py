"""Every preset learns the value of every probe environment (tests/helpers/probes.py) to within TOLERANCE."""

import numpy as np
import pytest
import torch as th

from rainbow_ext import PRESETS, Rainbow
from rainbow_ext.layers import noise_disabled
from tests.helpers.probes import PROBES, expected_q, munchausen_q

GAMMA = 0.9
TOLERANCE = 0.1  # max |Q - Q*| over the probe's observations and actions, noise off
STEPS = 2000
HYPERPARAMS = dict(
    learning_rate=3e-3,
    buffer_size=5_000,
    learning_starts=200,
    batch_size=32,
    train_freq=4,
    gradient_steps=4,
    target_update_interval=100,
    gamma=GAMMA,
    # A constant epsilon for every preset, noisy ones included: the probes check value learning,
    # so every action must keep being tried.
    exploration_initial_eps=0.5,
    exploration_final_eps=0.5,
    policy_kwargs=dict(net_arch=[32]),
    # quantile heads: 32 quantiles (QR's default 200 costs 40x as much per update for the same values)
    n_quantiles=32,
    seed=0,
)


# The default run gives dqn and rainbow every probe; each single component (one away from dqn) the
# three probes that exercise the most at once (discounting, observation-action values, the 4-step
# chain); the paper's ablations (one away from rainbow) two of them. The rest run with -m slow.
DEFAULT_RUN_PROBES = {
    "single": ("TwoStep", "MatchObservation", "Chain"),
    "ablation": ("MatchObservation", "Chain"),
}


def preset_probe_cases() -> list:
    cases = []
    for preset in PRESETS:
        kind = "full" if preset in ("dqn", "rainbow") else "ablation" if preset.startswith("rainbow-no-") else "single"
        for probe in PROBES:
            slow = kind != "full" and probe.__name__ not in DEFAULT_RUN_PROBES[kind]
            marks = [pytest.mark.slow] if slow else []
            cases.append(pytest.param(preset, probe, marks=marks, id=f"{preset}-{probe.__name__}"))
    return cases


@pytest.mark.parametrize(("preset", "probe"), preset_probe_cases())
def test_preset_learns_probe(preset: str, probe: type) -> None:
    model = Rainbow.from_preset(preset, "MlpPolicy", probe(), **HYPERPARAMS).learn(STEPS)
    observations, q_true = expected_q(probe, GAMMA)
    if model.munchausen:  # the regularized values that Munchausen's operator converges to
        q_true = munchausen_q(q_true, model.munchausen_tau, model.munchausen_alpha, model.munchausen_l0)
    with th.no_grad(), noise_disabled(model.q_net):
        q = model.q_net(th.as_tensor(observations, dtype=th.float32, device=model.device)).cpu().numpy()
    np.testing.assert_allclose(q, q_true, atol=TOLERANCE)
    # The greedy policy follows the values.
    actions, _ = model.predict(observations.astype(np.float32), deterministic=True)
    np.testing.assert_array_equal(actions, q_true.argmax(axis=1))
