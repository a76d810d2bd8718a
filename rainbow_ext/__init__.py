"""Rainbow (Hessel et al. 2018) for Stable-Baselines3, with every component switchable.

Importing the package imports nothing else and changes nothing: each name below is imported from its
module when first used (``from rainbow_ext import Rainbow`` loads torch and SB3 then), so that the
commands (``python -m rainbow_ext.train``, ...) can set up their Ctrl-C handling before those imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "DictNStepReplayBuffer": "rainbow_ext.buffers",
    "PrioritizedDictReplayBuffer": "rainbow_ext.buffers",
    "PrioritizedReplayBuffer": "rainbow_ext.buffers",
    "PrioritizedReplayBufferSamples": "rainbow_ext.buffers",
    "DataEfficientTrunk": "rainbow_ext.layers",
    "MinAtarTrunk": "rainbow_ext.layers",
    "NatureCNNTrunk": "rainbow_ext.layers",
    "NoisyLinear": "rainbow_ext.layers",
    "CnnPolicy": "rainbow_ext.policies",
    "MlpPolicy": "rainbow_ext.policies",
    "MultiInputPolicy": "rainbow_ext.policies",
    "RainbowPolicy": "rainbow_ext.policies",
    "RainbowQNetwork": "rainbow_ext.policies",
    "PRESETS": "rainbow_ext.presets",
    "preset_flags": "rainbow_ext.presets",
    "Rainbow": "rainbow_ext.rainbow",
}

__all__ = [
    "PRESETS",
    "CnnPolicy",
    "DataEfficientTrunk",
    "DictNStepReplayBuffer",
    "MinAtarTrunk",
    "MlpPolicy",
    "MultiInputPolicy",
    "NatureCNNTrunk",
    "NoisyLinear",
    "PrioritizedDictReplayBuffer",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "Rainbow",
    "RainbowPolicy",
    "RainbowQNetwork",
    "__version__",
    "preset_flags",
]

if TYPE_CHECKING:
    from rainbow_ext.buffers import (
        DictNStepReplayBuffer,
        PrioritizedDictReplayBuffer,
        PrioritizedReplayBuffer,
        PrioritizedReplayBufferSamples,
    )
    from rainbow_ext.layers import DataEfficientTrunk, MinAtarTrunk, NatureCNNTrunk, NoisyLinear
    from rainbow_ext.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, RainbowPolicy, RainbowQNetwork
    from rainbow_ext.presets import PRESETS, preset_flags
    from rainbow_ext.rainbow import Rainbow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rainbow_ext' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
