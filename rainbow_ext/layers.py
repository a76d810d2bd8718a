"""Network building blocks: the noisy linear layer, the convolutional trunk and the Rainbow head.

The head is where three components live: ``noisy`` (which linear layer), ``dueling`` (two streams
combined as V + A - mean_a A) and ``distributional`` (``n_atoms`` outputs per action instead of one).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import gymnasium as gym
import numba
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

# On the CPU, a noisy layer of at least this many weights fed at most this many rows runs in the
# factorised form of NoisyLinear.forward. From benchmarks/speed/noisy_linear.py: for one row, as when
# acting in one env, it is 1.2-1.5x faster for MinAtar's hidden layer and 1.8-2.9x for the Nature
# network's; with 2 rows or more, or a smaller layer, building the noisy weight is mostly as fast or
# faster. On a GPU the factorised form's two extra kernel launches would cost more than the memory
# traffic it saves.
FACTORISED_MIN_WEIGHTS = 1 << 16
FACTORISED_MAX_ROWS = 1


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian noise (Fortunato et al. 2018, "Noisy Networks for
    Exploration", section 3.2): ``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b`` with
    ``eps_w = f(eps_out) f(eps_in)^T``, ``eps_b = f(eps_out)`` and ``f(x) = sign(x) sqrt(|x|)``.

    Noise is switched by ``noise_enabled``, never by ``nn.Module.training``: SB3 puts the policy in
    eval mode while collecting and keeps the target network in eval mode, and both need noise.
    ``reset_noise`` draws a new sample from torch's global generator (seeded by SB3's ``seed``) and
    keeps ``eps_w``, so that the forward passes until the next draw share it.

    :param in_features: input size p
    :param out_features: output size q
    :param sigma0: initial noise scale; sigma starts at ``sigma0 / sqrt(p)`` (paper: 0.5)
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        if sigma0 <= 0:
            raise ValueError(f"sigma0 must be > 0, got {sigma0}")
        self.in_features = in_features
        self.out_features = out_features
        self.sigma0 = sigma0
        self.noise_enabled = True
        # (weight, bias) with this draw's noise, built for several passes at once (built_noisy_weights)
        self.built: tuple[th.Tensor, th.Tensor] | None = None
        large = in_features * out_features >= FACTORISED_MIN_WEIGHTS
        self._factorised_max_numel = FACTORISED_MAX_ROWS * in_features if large else -1
        self.weight_mu = nn.Parameter(th.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(th.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(th.empty(out_features))
        self.bias_sigma = nn.Parameter(th.empty(out_features))
        # The noise sample is not part of the model's state: it is redrawn, never learned or saved.
        self.register_buffer("eps_in", th.zeros(in_features), persistent=False)
        self.register_buffer("eps_out", th.zeros(out_features), persistent=False)
        self.register_buffer("eps_weight", th.zeros(out_features, in_features), persistent=False)
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        # Section 3.2: mu ~ U[-1/sqrt(p), 1/sqrt(p)], sigma = sigma0 / sqrt(p)
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.sigma0 * bound)
        nn.init.constant_(self.bias_sigma, self.sigma0 * bound)

    def reset_noise(self) -> None:
        """Draw a fresh factorised noise sample (p + q Gaussians instead of p * q + q)."""
        reset_noise([self])

    def forward(self, x: th.Tensor) -> th.Tensor:
        if not self.noise_enabled:
            return F.linear(x, self.weight_mu, self.bias_mu)
        if self.built is not None:
            return F.linear(x, *self.built)
        if self.factorised_form(x):
            # Factorised form, without the q x p noisy weight:
            # (mu_w + sigma_w * eps_out eps_in^T) x = mu_w x + eps_out * (sigma_w (eps_in * x))
            bias = th.addcmul(self.bias_mu, self.bias_sigma, self.eps_out)
            return th.addcmul(
                F.linear(x, self.weight_mu, bias), F.linear(x * self.eps_in, self.weight_sigma), self.eps_out
            )
        # the kernel that built_noisy_weights runs, so that both give the same weights on every device (on a
        # GPU the multi-tensor kernel and th.addcmul may round mu + sigma * eps differently)
        weight, bias = th._foreach_addcmul(
            [self.weight_mu, self.bias_mu], [self.weight_sigma, self.bias_sigma], [self.eps_weight, self.eps_out]
        )
        return F.linear(x, weight, bias)

    def factorised_form(self, x: th.Tensor) -> bool:
        """Whether ``forward`` skips building the noisy weight: a large layer fed few rows, on the CPU."""
        return x.is_cpu and x.numel() <= self._factorised_max_numel

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, sigma0={self.sigma0}"


def noisy_layers(module: nn.Module) -> list[NoisyLinear]:
    return [m for m in module.modules() if isinstance(m, NoisyLinear)]


def reset_noise(module: nn.Module | Sequence[NoisyLinear]) -> None:
    """Resample the noise of every noisy layer in ``module`` (or of the given layers): one draw of
    ``sum(p + q)`` Gaussians, ``f(x) = sign(x) sqrt(|x|)`` applied once, split among the layers; then
    each layer's ``eps_w = eps_out eps_in^T``."""
    layers = noisy_layers(module) if isinstance(module, nn.Module) else list(module)
    if not layers:
        return
    sizes = [n for layer in layers for n in (layer.in_features, layer.out_features)]
    x = th.randn(sum(sizes), device=layers[0].eps_in.device)
    pieces = th.split(x.sign() * x.abs().sqrt(), sizes)
    # one kernel for all the copies: this runs every gradient step
    th._foreach_copy_([b for layer in layers for b in (layer.eps_in, layer.eps_out)], list(pieces))
    for layer in layers:
        th.outer(layer.eps_out, layer.eps_in, out=layer.eps_weight)


@contextmanager
def built_noisy_weights(layers: Sequence[NoisyLinear], grad: bool = True) -> Iterator[None]:
    """Inside the block, every layer of ``layers`` reads its noisy weight ``mu_w + sigma_w * eps_w`` and bias
    ``mu_b + sigma_b * eps_b`` from one multi-tensor kernel run at its start, instead of building them in
    each pass: a gradient step passes twice through the online network (s and s') with one noise draw.
    The same values as each layer's own forward, bit for bit; gradients reach mu and sigma through it
    when gradients are on and ``grad`` (the target network: ``grad=False``). Layers with their noise off
    (``noise_disabled``) still read the mean weights."""
    layers = list(layers)
    if not layers:
        yield
        return
    with th.set_grad_enabled(grad and th.is_grad_enabled()):
        built = th._foreach_addcmul(
            [t for layer in layers for t in (layer.weight_mu, layer.bias_mu)],
            [t for layer in layers for t in (layer.weight_sigma, layer.bias_sigma)],
            [t for layer in layers for t in (layer.eps_weight, layer.eps_out)],
        )
    for i, layer in enumerate(layers):
        layer.built = (built[2 * i], built[2 * i + 1])
    try:
        yield
    finally:
        for layer in layers:
            layer.built = None


@contextmanager
def noise_disabled(module: nn.Module | Sequence[NoisyLinear]) -> Iterator[None]:
    """Evaluate ``module`` with the noise of its noisy layers off (the mean network), then restore."""
    layers = noisy_layers(module) if isinstance(module, nn.Module) else list(module)
    previous = [layer.noise_enabled for layer in layers]
    for layer in layers:
        layer.noise_enabled = False
    try:
        yield
    finally:
        for layer, enabled in zip(layers, previous, strict=True):
            layer.noise_enabled = enabled


def mlp(
    in_dim: int,
    out_dim: int,
    net_arch: list[int],
    activation_fn: type[nn.Module],
    noisy: bool,
    noisy_sigma0: float,
) -> nn.Sequential:
    """Linear layers with activations in between, laid out as SB3's ``create_mlp`` so that the plain
    variant draws the same initial weights as SB3's DQN for the same seed."""
    sizes = [in_dim, *net_arch, out_dim]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(NoisyLinear(n_in, n_out, noisy_sigma0) if noisy else nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation_fn())
    return nn.Sequential(*layers)


class RainbowHead(nn.Module):
    """Fully connected part of the Q-network: features -> ``[batch, n_actions, n_atoms]``.

    The output is Q-values (``n_atoms == 1``), per-atom logits (C51) or quantiles (QR-DQN). With
    ``dueling`` (Wang et al. 2016, eq. 9) a value stream and an advantage stream, each with its own hidden
    layers ``net_arch``, are combined per atom as ``V + A - mean_a A``. ``atoms_first``: the last layer's
    outputs are read as ``[n_atoms, n_actions]`` (sb3-contrib's QuantileNetwork layout) rather than
    ``[n_actions, n_atoms]``; the result has the same shape either way.
    """

    def __init__(
        self,
        features_dim: int,
        n_actions: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        dueling: bool,
        noisy: bool,
        noisy_sigma0: float,
        n_atoms: int,
        atoms_first: bool = False,
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.n_atoms = n_atoms
        self.dueling = dueling
        self.atoms_first = atoms_first
        if dueling:
            self.value = mlp(features_dim, n_atoms, net_arch, activation_fn, noisy, noisy_sigma0)
            self.advantage = mlp(features_dim, n_actions * n_atoms, net_arch, activation_fn, noisy, noisy_sigma0)
        else:
            self.q = mlp(features_dim, n_actions * n_atoms, net_arch, activation_fn, noisy, noisy_sigma0)

    def _per_action(self, outputs: th.Tensor) -> th.Tensor:
        if self.atoms_first:
            return outputs.view(-1, self.n_atoms, self.n_actions).transpose(1, 2)
        return outputs.view(-1, self.n_actions, self.n_atoms)

    def centered_advantage(self, features: th.Tensor) -> th.Tensor:
        """Dueling advantage stream minus its mean over actions, ``[batch, n_actions, n_atoms]``."""
        advantage = self._per_action(self.advantage(features))
        return advantage - advantage.mean(dim=1, keepdim=True)

    def forward(self, features: th.Tensor) -> th.Tensor:
        if self.dueling:
            value = self.value(features).view(-1, 1, self.n_atoms)
            return value + self.centered_advantage(features)
        return self._per_action(self.q(features))


class CosineEmbedding(nn.Module):
    """IQN's embedding of sampled quantile fractions (Dabney et al. 2018b, eq. 4):
    ``phi_j(tau) = ReLU(sum_{i=0}^{n-1} cos(pi i tau) w_ij + b_j)``, one ``features_dim`` vector per tau,
    multiplied into the trunk's features before the head.

    :param n_cosines: n, the cosine features of each tau (64 in the paper)
    :param features_dim: the trunk's features
    """

    def __init__(self, n_cosines: int, features_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_cosines, features_dim)
        self.register_buffer("frequencies", th.pi * th.arange(n_cosines, dtype=th.float32), persistent=False)

    def forward(self, taus: th.Tensor) -> th.Tensor:
        """``[batch, n_taus]`` fractions in [0, 1] -> ``[batch, n_taus, features_dim]``."""
        return F.relu(self.linear(th.cos(taus.unsqueeze(-1) * self.frequencies)))


class NatureCNNTrunk(BaseFeaturesExtractor):
    """The convolutional layers of the Nature DQN network (Mnih et al. 2015), flattened, without the
    512-unit fully connected layer of SB3's ``NatureCNN``: in Rainbow that layer belongs to the head,
    where it can be noisy and split into dueling streams. Layers are created in the same order as
    ``NatureCNN``'s, so ``CnnPolicy`` with every component off draws SB3 DQN's initial weights.

    :param observation_space: channel-first image space
    :param normalized_image: skip the uint8 and [0, 255] checks (images already normalized)
    """

    def __init__(self, observation_space: gym.Space, normalized_image: bool = False) -> None:
        if not isinstance(observation_space, spaces.Box) or not is_image_space(
            observation_space, check_channels=False, normalized_image=normalized_image
        ):
            raise ValueError(
                f"NatureCNNTrunk needs a channel-first image Box observation space, got {observation_space}; "
                "use MlpPolicy for vector observations, or normalize_images=False for float images"
            )
        n_channels = observation_space.shape[0]
        cnn = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with th.no_grad():
            n_flatten = cnn(th.zeros(1, *observation_space.shape)).shape[1]
        super().__init__(observation_space, n_flatten)
        self.cnn = cnn

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.cnn(observations)


class MinAtarTrunk(BaseFeaturesExtractor):
    """The convolution of the MinAtar network (Young & Tian 2019): one 3x3 convolution with 16
    channels, stride 1, ReLU, flattened. Its 128-unit fully connected layer belongs to the head
    (``net_arch=[128]``), as the Nature network's 512-unit layer does in :class:`NatureCNNTrunk`.

    :param observation_space: channel-first ``(channels, height, width)`` Box, e.g. MinAtar's 10x10
    :param normalized_image: accepted for ``CnnPolicy(normalize_images=False)``; nothing to check
    :param n_filters: convolution channels
    """

    def __init__(self, observation_space: gym.Space, normalized_image: bool = False, n_filters: int = 16) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3):
            raise ValueError(
                f"MinAtarTrunk needs channel-first (channels, height, width) observations, got {observation_space}"
            )
        channels, height, width = observation_space.shape
        if min(height, width) < 3:
            raise ValueError(f"MinAtarTrunk needs images of at least 3x3, got {height}x{width}")
        super().__init__(observation_space, n_filters * (height - 2) * (width - 2))
        self.cnn = nn.Sequential(nn.Conv2d(channels, n_filters, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.cnn(observations)


@numba.njit(cache=True, nogil=True)
def _patch_rows(images: np.ndarray, k: int, values: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """The k x k patches of a batch of uint8 channel-first images that a second k x k, stride-k layer reads,
    as matrix rows converted through the table ``values`` (``float32(v) / 255``) in the same pass:
    ``out[(n, i2, j2, a, b), (c, kh, kw)] = values[images[n, c, k * (k * i2 + a) + kh, k * (k * j2 + b) + kw]]``.
    Rows are grouped by the second layer's patch, columns in ``Conv2d``'s weight order; each row is
    written whole, in order."""
    batch, channels, height, width = images.shape
    h2, w2 = height // (k * k), width // (k * k)
    row = 0
    for n in range(batch):
        for i2 in range(h2):
            for j2 in range(w2):
                for a in range(k):
                    for b in range(k):
                        y0, x0 = (i2 * k + a) * k, (j2 * k + b) * k
                        col = 0
                        for c in range(channels):
                            for kh in range(k):
                                for kw in range(k):
                                    out[row, col] = values[images[n, c, y0 + kh, x0 + kw]]
                                    col += 1
                        row += 1


class DataEfficientTrunk(BaseFeaturesExtractor):
    """The encoder of data-efficient Rainbow (van Hasselt et al. 2019, "When to use parametric models in
    reinforcement learning?", appendix F): a 5x5 convolution of 32 filters with stride 5, then a 5x5
    convolution of 64 filters with stride 5, each followed by a ReLU, flattened (576 features on 84x84
    Atari frames). Its hidden layer (256 units per dueling stream in DER) belongs to the head. Kaixhin's
    Rainbow (``--architecture data-efficient``) and CURL's Atari agent use the same encoder.

    Each kernel is as wide as its stride, so each convolution reads disjoint patches. On the CPU the
    trunk cuts the images into patch rows once (:meth:`prepare`, fused with the conversion to float) and
    runs each convolution as one matrix product (:meth:`features`): the same sums as ``Conv2d`` with the
    same parameters, in about half the time of the convolution kernels with their backward pass at this
    size (``benchmarks/speed/der_speed.py``). The rows are ordered so that the first product's output is
    already the second's input, with no copy between them, and only the first layer's outputs that the
    second reads are computed: 15x15 of its 16x16 on 84x84 frames. Elsewhere :meth:`prepare` only
    converts and :meth:`features` runs the ``Conv2d`` layers. Pixels past the second layer's last whole
    patch (the right and bottom 9 of an 84x84 frame) change no feature, either way.

    ``bfloat16=True`` (opt-in) runs both layers' products in bfloat16, forward and backward, with float32
    parameters and float32 features out, as ``torch.autocast`` would: the patch rows are cut straight into
    bfloat16 (pixel / 255 rounded to 8 significant bits), the weights are cast in each pass, and each
    gradient reaches its float32 parameter through the cast. It pays on CPUs with bfloat16 matrix units
    (``avx512_bf16``, AMX: about 2x on these products), and elsewhere runs the layers under
    ``torch.autocast``. What it costs in learning: docs/implementation.md, "Departures from the papers".

    :param observation_space: channel-first image space, at least 25x25
    :param normalized_image: skip the uint8 and [0, 255] checks (images already normalized)
    :param bfloat16: the two layers' products in bfloat16 (default: float32)
    """

    KERNEL = 5

    def __init__(self, observation_space: gym.Space, normalized_image: bool = False, bfloat16: bool = False) -> None:
        if not isinstance(bfloat16, bool):
            raise ValueError(f"DataEfficientTrunk: bfloat16 must be True or False, got {bfloat16!r}")
        if not isinstance(observation_space, spaces.Box) or not is_image_space(
            observation_space, check_channels=False, normalized_image=normalized_image
        ):
            raise ValueError(
                f"DataEfficientTrunk needs a channel-first image Box observation space, got {observation_space}; "
                "use MlpPolicy for vector observations, or normalize_images=False for float images"
            )
        n_channels, height, width = observation_space.shape
        k = self.KERNEL
        if min(height, width) < k * k:
            raise ValueError(f"DataEfficientTrunk needs images of at least {k * k}x{k * k}, got {height}x{width}")
        # output sizes of the two convolutions (no padding, stride = kernel)
        self.grid1 = (height // k, width // k)
        self.grid2 = (self.grid1[0] // k, self.grid1[1] // k)
        super().__init__(observation_space, 64 * self.grid2[0] * self.grid2[1])
        self.cnn = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=k, stride=k),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=k, stride=k),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.bfloat16 = bfloat16
        self._tables: dict[float, np.ndarray] = {}  # see _table

    @property
    def _row_dtype(self) -> th.dtype:
        """The dtype of the patch rows and of the products."""
        return th.bfloat16 if self.bfloat16 else th.float32

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.features(self.prepare(observations))

    def prepare(self, images: th.Tensor, divisor: float = 1.0) -> th.Tensor:
        """The trunk's input, computed once per batch: ``images.float() / divisor`` (SB3 divides uint8 images
        by 255), as patch rows ``[batch * h2 * w2 * 25, channels * 25]`` on the CPU (from uint8 images through
        a table of the 256 quotients: the same values, rounded once to bfloat16 with ``bfloat16``), else as
        images. Row ``(n, i2, j2, a, b)`` holds the first layer's patch at ``(5 * i2 + a, 5 * j2 + b)``, in
        ``Conv2d``'s weight order."""
        k, (h2, w2) = self.KERNEL, self.grid2
        if images.dtype == th.uint8 and images.is_cpu and images.dim() == 4:
            rows = th.empty(images.shape[0] * h2 * w2 * k * k, images.shape[1] * k * k, dtype=self._row_dtype)
            # the kernel copies table entries: bfloat16 travels as its 16 bits
            view = th.int16 if self.bfloat16 else th.float32
            _patch_rows(images.contiguous().numpy(), k, self._table(divisor), rows.view(view).numpy())
            return rows
        images = images.float()
        images = images / divisor if divisor != 1.0 else images
        if images.is_cpu and images.dim() == 4:
            n, c = images.shape[:2]
            # [n, c, (i2, a, kh), (j2, b, kw)] -> [(n, i2, j2, a, b), (c, kh, kw)]
            patches = images[:, :, : h2 * k * k, : w2 * k * k].to(self._row_dtype).reshape(n, c, h2, k, k, w2, k, k)
            return patches.permute(0, 2, 5, 3, 6, 1, 4, 7).reshape(n * h2 * w2 * k * k, c * k * k)
        return images

    def _table(self, divisor: float) -> np.ndarray:
        """``float32(v) / divisor`` for the 256 uint8 values, in the rows' dtype (bfloat16 as its bits), kept."""
        if divisor not in self._tables:
            values = (th.arange(256, dtype=th.float32) / divisor).to(self._row_dtype)
            self._tables[divisor] = values.view(th.int16 if self.bfloat16 else th.float32).numpy()
        return self._tables[divisor]

    def features(self, prepared: th.Tensor) -> th.Tensor:
        """The 576 features of :meth:`prepare`'s output."""
        if prepared.dim() != 2:  # images: the convolution kernels
            if not self.bfloat16:
                return self.cnn(prepared)
            # no cast cache: the casts are redone in each pass (and inside a captured CUDA graph)
            with th.autocast(prepared.device.type, dtype=th.bfloat16, cache_enabled=False):
                return self.cnn(prepared).float()
        conv1, conv2 = self.cnn[0], self.cnn[2]
        k, (h2, w2) = self.KERNEL, self.grid2
        batch, dtype = prepared.shape[0] // (h2 * w2 * k * k), prepared.dtype
        # ReLU in place: the product's output is this function's own (a new buffer would cost a pass over memory)
        weight, bias = conv1.weight.reshape(conv1.out_channels, -1).to(dtype), conv1.bias.to(dtype)
        hidden = F.linear(prepared, weight, bias).relu_()
        # rows (n, i2, j2, a, b) of 32 channels are, 25 at a time, the second layer's patch rows in
        # (kh, kw, channel) order; its weight is read in the same order
        rows = hidden.view(batch * h2 * w2, k * k * conv1.out_channels)
        weight = conv2.weight.to(dtype).permute(0, 2, 3, 1).reshape(conv2.out_channels, -1)
        out = F.linear(rows, weight, conv2.bias.to(dtype)).relu_()
        # Conv2d's flattening order: channel, then row, then column
        return out.view(batch, h2 * w2, conv2.out_channels).transpose(1, 2).reshape(batch, self.features_dim).float()
