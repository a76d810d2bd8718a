"""Rainbow policies: SB3's DQN policies with a Rainbow head (dueling, noisy, distributional).

``q_net(obs)`` returns expected Q-values ``[batch, n_actions]`` for every variant, so SB3's
``predict`` and tooling written for SB3's DQN keep working; ``q_net.distribution(obs)`` returns the
C51 return distribution.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from rainbow_ext.cuda_graphs import CapturedFunction
from rainbow_ext.head_options import HeadOptions
from rainbow_ext.layers import (
    CosineEmbedding,
    DataEfficientTrunk,
    MinAtarTrunk,
    NatureCNNTrunk,
    RainbowHead,
    noise_disabled,
    noisy_layers,
    reset_noise,
)

# The Nature DQN convolutions (8x8 stride 4, 4x4 stride 2, 3x3) need images of at least 36x36.
NATURE_CNN_MIN_SIZE = 36


class RainbowQNetwork(QNetwork):
    """Q-network: features extractor (trunk) followed by a :class:`~rainbow_ext.layers.RainbowHead`.

    It is a ``QNetwork`` so code typed against SB3's DQN accepts it, but it builds a Rainbow head in
    place of QNetwork's plain MLP (QNetwork's constructor builds that MLP unconditionally, so this
    class initialises ``BasePolicy`` directly). With IQN's head, a
    :class:`~rainbow_ext.layers.CosineEmbedding` of sampled quantile fractions is multiplied into the
    trunk's features, and the head runs once per fraction.

    :param head_options: dueling, noisy, and what the head predicts (:class:`HeadOptions`)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        head_options: HeadOptions | None = None,
    ) -> None:
        BasePolicy.__init__(
            self,
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        options = HeadOptions() if head_options is None else head_options
        self.net_arch = [64, 64] if net_arch is None else net_arch
        self.activation_fn = activation_fn
        self.features_dim = features_dim
        self.head_options = options
        self.kind = options.kind
        self.head = RainbowHead(
            features_dim,
            int(action_space.n),
            self.net_arch,
            activation_fn,
            dueling=options.dueling,
            noisy=options.noisy,
            noisy_sigma0=options.noisy_sigma0,
            n_atoms=options.outputs_per_action,
            # QR-DQN's quantiles in sb3-contrib's layout, so that qr with every other component off is its QRDQN
            atoms_first=self.kind == "qr",
        )
        if self.kind == "iqn":
            self.tau_embedding = CosineEmbedding(options.cosine_embedding_dim, features_dim)
        self._noisy_layers = noisy_layers(self.head)  # fixed once built; reset_noise runs every gradient step
        # C51 atoms z_i = v_min + i * (v_max - v_min) / (N - 1); derived from the options, not saved.
        self.register_buffer("support", th.linspace(options.v_min, options.v_max, options.n_atoms), persistent=False)

    # The head options, as attributes of the network (read by tests and tools written for earlier versions)
    dueling = property(lambda self: self.head_options.dueling)
    noisy = property(lambda self: self.head_options.noisy)
    noisy_sigma0 = property(lambda self: self.head_options.noisy_sigma0)
    distributional = property(lambda self: self.head_options.distributional)
    n_atoms = property(lambda self: self.head_options.n_atoms)
    v_min = property(lambda self: self.head_options.v_min)
    v_max = property(lambda self: self.head_options.v_max)

    def prepare(self, obs: PyTorchObs) -> PyTorchObs:
        """The observations as the trunk reads them, computed once per batch and shared by every pass over
        it (the online and the target network read the next observations alike): SB3's preprocessing
        (floats; images scaled to [0, 1]), or, for a trunk with its own input layout
        (:class:`~rainbow_ext.layers.DataEfficientTrunk`), that layout, converted in the same pass."""
        trunk = self.features_extractor
        if isinstance(trunk, DataEfficientTrunk) and isinstance(obs, th.Tensor):
            scaled = self.normalize_images and is_image_space(self.observation_space)
            return trunk.prepare(obs, 255.0 if scaled else 1.0)
        return preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)

    @property
    def midpoints(self) -> th.Tensor:
        """QR-DQN's fractions, the midpoints (2i + 1) / 2N (Dabney et al. 2018a, lemma 2), made on the network's
        device as sb3-contrib makes them there: CUDA divides by a scalar through its reciprocal, so fractions
        made on the CPU and moved would differ from QRDQN's in the last bit."""
        n = self.head_options.quantiles
        return (th.arange(n, dtype=th.float, device=self.support.device) + 0.5) / max(n, 1)

    def sample_taus(self, batch_size: int, n: int | None = None) -> th.Tensor:
        """IQN's quantile fractions tau ~ U(0, 1), ``[batch, n]``; ``n`` defaults to K (acting)."""
        n = self.head_options.n_acting_quantiles if n is None else n
        return th.rand(batch_size, n, device=self.support.device)

    def head_output(self, obs: PyTorchObs, prepared: bool = False, taus: th.Tensor | None = None) -> th.Tensor:
        """``[batch, n_actions, n]``: C51 logits (n atoms), QR quantiles (N), IQN quantiles at ``taus``
        (``[batch, n]``; K fresh fractions by default), or Q-values (n = 1); ``prepared``: ``obs`` comes
        from :meth:`prepare`."""
        obs = obs if prepared else self.prepare(obs)
        trunk = self.features_extractor
        features = trunk.features(obs) if isinstance(trunk, DataEfficientTrunk) else trunk(obs)
        if self.kind != "iqn":
            return self.head(features)
        batch_size = features.shape[0]
        taus = self.sample_taus(batch_size) if taus is None else taus
        # psi(x) * phi(tau) (Dabney et al. 2018b, section 3.1), then the head once per (row, tau)
        embedded = (features.unsqueeze(1) * self.tau_embedding(taus)).flatten(0, 1)
        return self.head(embedded).view(batch_size, taus.shape[1], -1).transpose(1, 2)

    def q_values(self, head_output: th.Tensor) -> th.Tensor:
        """Expected Q-values ``[batch, n_actions]`` from a :meth:`head_output`: the C51 distribution's
        mean, the quantiles' mean (over the sampled fractions for IQN, risk-neutral), or the values."""
        if self.kind == "c51":
            return (head_output.softmax(dim=-1) * self.support).sum(dim=-1)
        if self.kind in ("qr", "iqn"):
            return head_output.mean(dim=-1)
        return head_output.squeeze(-1)

    def forward(self, obs: PyTorchObs, prepared: bool = False) -> th.Tensor:
        return self.q_values(self.head_output(obs, prepared))

    def distribution(self, obs: PyTorchObs) -> th.Tensor:
        """C51 return distribution: probabilities ``[batch, n_actions, n_atoms]`` over ``support``."""
        if self.kind != "c51":
            raise ValueError(
                f"distribution() needs the C51 head (distributional=True or 'c51'), this one is {self.kind!r}: "
                "quantile heads give quantiles()"
            )
        return self.head_output(obs).softmax(dim=-1)

    def quantiles(self, obs: PyTorchObs, taus: th.Tensor | None = None) -> th.Tensor:
        """Quantiles of the return ``[batch, n_actions, n]``: QR's N at ``midpoints``, or IQN's at ``taus``
        (``[batch, n]``, K fresh fractions by default)."""
        if self.kind not in ("qr", "iqn"):
            raise ValueError(
                f"quantiles() needs a quantile head (distributional='qr' or 'iqn'), this one is {self.kind!r}"
            )
        return self.head_output(obs, taus=taus)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        # Greedy action; deterministic predictions use the mean network (noise off).
        with noise_disabled(self._noisy_layers) if deterministic else nullcontext():
            return self(observation).argmax(dim=1).reshape(-1)

    def reset_noise(self) -> None:
        reset_noise(self._noisy_layers)

    def noise_sigma_mean(self) -> float:
        """Mean |sigma| over the weights and biases of the noisy layers (0.0 when there are none)."""
        sigmas = [p.detach() for m in self._noisy_layers for p in (m.weight_sigma, m.bias_sigma)]
        if not sigmas:
            return 0.0
        # sum of |sigma| per tensor (one foreach kernel), then the mean over every element
        return (th.stack(th._foreach_norm(sigmas, 1)).sum() / sum(p.numel() for p in sigmas)).item()

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.head_options.as_kwargs())
        return data


def check_optimizer_kwargs(optimizer_class: type[th.optim.Optimizer], optimizer_kwargs: dict[str, Any]) -> None:
    """An ``optimizer_kwargs`` key that ``optimizer_class`` does not take, named before the network is built."""
    given_by_sb3 = sorted({"params", "lr"} & set(optimizer_kwargs))
    if given_by_sb3:
        raise ValueError(
            f"optimizer_kwargs {given_by_sb3} are given by SB3 itself (the policy's parameters, and the "
            "learning rate from learning_rate): pass learning_rate to Rainbow instead"
        )
    parameters = inspect.signature(optimizer_class.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(optimizer_kwargs) - set(parameters) - {"self"})
    if unknown:
        takes = sorted(set(parameters) - {"self", "params"})
        raise ValueError(
            f"optimizer_kwargs {unknown} are not arguments of {optimizer_class.__name__}, which takes {takes}"
        )


class RainbowPolicy(DQNPolicy):
    """DQN policy (online and target :class:`RainbowQNetwork`) for vector observations.

    Extra keyword arguments are the head options (see :class:`~rainbow_ext.head_options.HeadOptions`). The optimizer
    defaults to Adam with ``eps=1.5e-4`` (Hessel et al. 2018, table 1) unless ``optimizer_kwargs``
    is given.
    """

    q_net: RainbowQNetwork
    q_net_target: RainbowQNetwork
    #: acting as CUDA graphs, one per value of ``deterministic`` (set by :meth:`use_cuda_graphs`)
    _act_graphs: dict[bool, CapturedFunction] | None = None
    _mode_modules: tuple[nn.Module, list[nn.Module] | None] | None = None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        dueling: bool = False,
        noisy: bool = False,
        noisy_sigma0: float = 0.5,
        distributional: bool | str = False,
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        n_quantiles: int | None = None,
        n_acting_quantiles: int = 32,
        cosine_embedding_dim: int = 64,
    ) -> None:
        # Read by make_q_net, which DQNPolicy.__init__ calls through _build, so set before it.
        self.head_options = HeadOptions(
            dueling=dueling,
            noisy=noisy,
            noisy_sigma0=noisy_sigma0,
            distributional=distributional,
            n_atoms=n_atoms,
            v_min=v_min,
            v_max=v_max,
            n_quantiles=n_quantiles,
            n_acting_quantiles=n_acting_quantiles,
            cosine_embedding_dim=cosine_embedding_dim,
        )
        if optimizer_kwargs is None:
            # Rainbow's Adam (eps, Hessel et al. 2018); fused: one kernel for all parameters (CPU and
            # CUDA), much less per-step overhead. Any other optimizer gets only what the user passes.
            optimizer_kwargs = {"eps": 1.5e-4, "fused": True} if optimizer_class is th.optim.Adam else {}
        check_optimizer_kwargs(optimizer_class, optimizer_kwargs)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
        )

    def use_cuda_graphs(self, enabled: bool) -> None:
        """Act through CUDA graphs (one per batch shape and value of ``deterministic``), or eagerly."""
        if not enabled or self.device.type != "cuda":
            self._act_graphs = None
            return
        self._act_graphs = {
            deterministic: CapturedFunction(
                partial(self.q_net._predict, deterministic=deterministic), self.q_net_tensors, self.device, False
            )
            for deterministic in (True, False)
        }

    def q_net_tensors(self) -> Iterator[th.Tensor]:
        """The online network's parameters and buffers (noise samples included)."""
        yield from self.q_net.parameters()
        yield from self.q_net.buffers()

    def _predict(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        if self._act_graphs is not None and not th.is_grad_enabled():
            return self._act_graphs[deterministic](obs).clone()
        return self.q_net._predict(obs, deterministic=deterministic)

    def make_q_net(self) -> RainbowQNetwork:
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return RainbowQNetwork(**net_args, head_options=self.head_options).to(self.device)

    def set_training_mode(self, mode: bool) -> None:
        # SB3 switches modes around every collection and every train call. Module.train walks every
        # submodule through generators, which costs as much as a small network's forward pass; the
        # flags are set on a list of the modules kept from one walk instead (the same effect), unless
        # one of them overrides train().
        if self.training == mode and self.q_net.training == mode:
            return
        if self._mode_modules is None or self._mode_modules[0] is not self.q_net:
            modules = list(self.q_net.modules())
            plain = all(type(m).train is nn.Module.train for m in modules)
            self._mode_modules = (self.q_net, modules if plain else None)
        modules = self._mode_modules[1]
        if modules is None:
            super().set_training_mode(mode)
            return
        for module in modules:
            module.training = mode
        self.training = mode

    def reset_noise(self) -> None:
        """Fresh, independent noise for the online and the target network (one draw for both)."""
        reset_noise([*self.q_net._noisy_layers, *self.q_net_target._noisy_layers])

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.head_options.as_kwargs())
        return data


MlpPolicy = RainbowPolicy


# The head's hidden layers after each extractor when net_arch is not given: the Nature DQN's 512 units,
# MinAtar's 128 and data-efficient Rainbow's 256 (Hessel et al. 2018; Young & Tian 2019; van Hasselt et
# al. 2019); none after SB3's NatureCNN, whose own last layer (features_dim) is the hidden layer, and
# SB3's [64, 64] after any other extractor, as SB3's DQN.
HEAD_AFTER: dict[type, list[int]] = {
    NatureCNNTrunk: [512],
    MinAtarTrunk: [128],
    DataEfficientTrunk: [256],
    NatureCNN: [],
}


class CnnPolicy(RainbowPolicy):
    """Rainbow policy for images. The trunk (features extractor) follows the image size unless
    ``features_extractor_class`` is given: the Nature DQN convolutions (:class:`NatureCNNTrunk`) and a
    head with one hidden layer of 512 units (Hessel et al. 2018) for Atari-sized images; for images
    under 36x36, too small for the Nature network, MinAtar's one convolution (:class:`MinAtarTrunk`)
    and 128 units (Young & Tian 2019). The head's hidden layers can be noisy and dueling."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **head_options: Any,
    ) -> None:
        if features_extractor_class is None:
            small = (
                isinstance(observation_space, spaces.Box) and min(observation_space.shape[-2:]) < NATURE_CNN_MIN_SIZE
            )
            features_extractor_class = MinAtarTrunk if small else NatureCNNTrunk
            features_extractor_kwargs = dict(features_extractor_kwargs or {})
            net_arch = _head_from_features_dim(features_extractor_kwargs.pop("features_dim", None), net_arch)
        if net_arch is None:
            net_arch = HEAD_AFTER.get(features_extractor_class, [64, 64])
        if not normalize_images:
            # SB3 tells NatureCNN about already-normalized images by class; tell the trunk the same way.
            features_extractor_kwargs = {"normalized_image": True, **(features_extractor_kwargs or {})}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            **head_options,
        )


def _head_from_features_dim(features_dim: Any, net_arch: list[int] | None) -> list[int] | None:
    """SB3's NatureCNN ends in a linear layer of ``features_dim`` units that the Q-network reads; in
    Rainbow's network that layer is the head's hidden layer (noisy and dueling with the rest of the
    head), so ``features_extractor_kwargs["features_dim"]`` sets ``net_arch=[features_dim]``."""
    if features_dim is None:
        return net_arch
    if isinstance(features_dim, bool) or not isinstance(features_dim, int) or features_dim < 1:
        raise ValueError(f"features_extractor_kwargs['features_dim'] must be an integer >= 1, got {features_dim!r}")
    if net_arch is not None and list(net_arch) != [features_dim]:
        raise ValueError(
            f"features_extractor_kwargs['features_dim']={features_dim} sets the head's hidden layer "
            f"(net_arch=[{features_dim}]) and conflicts with net_arch={net_arch}: give one of them"
        )
    return [features_dim]


class MultiInputPolicy(RainbowPolicy):
    """Rainbow policy for Dict observations (SB3's ``CombinedExtractor``, then the head)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **head_options: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
            **head_options,
        )
