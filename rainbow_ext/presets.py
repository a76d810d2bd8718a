"""Named component combinations, shared by the training, ablation and tuning commands.

``dqn`` has every component off; ``double``, ``dueling``, ``noisy``, ``c51``, ``nstep`` and ``per`` add one
component to it; ``rainbow`` has them all; ``rainbow-no-<component>`` removes one (the ablations of
Hessel et al. 2018, figure 3). Beyond the paper: ``qr`` and ``iqn`` are DQN with a quantile head in place
of expected values (QR-DQN, Dabney et al. 2018a; IQN, Dabney et al. 2018b), ``rainbow-iqn`` is Rainbow with
IQN's head in place of C51's (as in "Revisiting Rainbow", Obando-Ceron & Castro 2021), and ``m-dqn`` is
DQN with Munchausen's target (Vieillard et al. 2020).
"""

from __future__ import annotations

from typing import Any

# Each component and the constructor flags that switch it on.
COMPONENTS: dict[str, dict[str, Any]] = {
    "double": {"double_q": True},
    "dueling": {"dueling": True},
    "noisy": {"noisy": True},
    "c51": {"distributional": True},
    "nstep": {"n_steps": 3},
    "per": {"prioritized": True},
}
_ALL_OFF: dict[str, Any] = {
    "double_q": False,
    "dueling": False,
    "noisy": False,
    "distributional": False,
    "n_steps": 1,
    "prioritized": False,
    "munchausen": False,
}
_ALL_ON: dict[str, Any] = {
    **{key: value for flags in COMPONENTS.values() for key, value in flags.items()},
    "munchausen": False,
}
# Presets beyond the paper's components: another head, or Munchausen's target, on DQN or Rainbow.
BEYOND: dict[str, dict[str, Any]] = {
    "qr": {**_ALL_OFF, "distributional": "qr"},
    "iqn": {**_ALL_OFF, "distributional": "iqn"},
    "rainbow-iqn": {**_ALL_ON, "distributional": "iqn"},
    "m-dqn": {**_ALL_OFF, "munchausen": True},
}


def _build_presets() -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = {"dqn": dict(_ALL_OFF)}
    for name, flags in COMPONENTS.items():
        presets[name] = {**_ALL_OFF, **flags}
    presets["rainbow"] = dict(_ALL_ON)
    for name, flags in COMPONENTS.items():
        presets[f"rainbow-no-{name}"] = {**_ALL_ON, **{key: _ALL_OFF[key] for key in flags}}
    presets.update(BEYOND)
    return presets


PRESETS: dict[str, dict[str, Any]] = _build_presets()


def preset_flags(name: str) -> dict[str, Any]:
    """The constructor flags of preset ``name`` (a copy); a ValueError lists the valid names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
