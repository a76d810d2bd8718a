"""Rainbow (Hessel et al. 2018) for Stable-Baselines3, with every component switchable."""

from rainbow_ext.startup import exit_quietly_while_starting

exit_quietly_while_starting()  # before torch and SB3 load: see rainbow_ext.startup

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

__version__ = "0.1.0"

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
