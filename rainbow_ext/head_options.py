"""The options that define a Rainbow network's head, checked once and carried as one value.

Rainbow builds a :class:`HeadOptions` from its arguments, passes it to the policy through
``policy_kwargs`` (as plain keyword arguments, so they are saved in the zip as SB3 saves any network
option), and the policy and both Q-networks read that one value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from rainbow_ext.domains import check_values

#: What the head predicts per action: an expected value, or a return distribution as C51's categorical
#: probabilities (Bellemare et al. 2017), QR-DQN's fixed quantiles (Dabney et al. 2018a) or IQN's
#: sampled quantiles (Dabney et al. 2018b).
HeadKind = Literal["q", "c51", "qr", "iqn"]
# N for QR-DQN (sb3-contrib's default, as Dabney et al. 2018a's Atari agent), N = N' for IQN (Dabney et al. 2018b)
DEFAULT_QUANTILES = {"qr": 200, "iqn": 64}


@dataclass(frozen=True)
class HeadOptions:
    """The head's options, as Rainbow's arguments of the same names.

    :param dueling: dueling value and advantage streams (Wang et al. 2016)
    :param noisy: factorised Gaussian NoisyLinear layers (Fortunato et al. 2018)
    :param noisy_sigma0: initial noise scale of the noisy layers
    :param distributional: ``False`` (expected values), ``True`` or ``"c51"`` (categorical), ``"qr"``
        (quantile regression) or ``"iqn"`` (implicit quantiles)
    :param n_atoms: C51 atoms
    :param v_min: smallest atom of the C51 support
    :param v_max: largest atom of the C51 support
    :param n_quantiles: quantiles: QR-DQN's N (default 200), or IQN's N = N' sampled for the loss
        (default 64)
    :param n_acting_quantiles: IQN's K, the quantiles sampled to estimate Q when acting (32)
    :param cosine_embedding_dim: IQN's n, cosine features of each sampled quantile (64)
    """

    dueling: bool = False
    noisy: bool = False
    noisy_sigma0: float = 0.5
    distributional: bool | str = False
    n_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    n_quantiles: int | None = None
    n_acting_quantiles: int = 32
    cosine_embedding_dim: int = 64

    def __post_init__(self) -> None:
        check_values(asdict(self))  # each option in its domain (rainbow_ext.domains)
        if not self.v_min < self.v_max:
            raise ValueError(f"v_min must be < v_max, got v_min={self.v_min!r}, v_max={self.v_max!r}")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> HeadOptions:
        """The head options among ``kwargs`` (a policy's keyword arguments); missing ones take their
        defaults, as in a zip saved before they existed."""
        return cls(**{name: kwargs[name] for name in OPTION_NAMES if name in kwargs})

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def kind(self) -> HeadKind:
        if self.distributional is True:
            return "c51"
        if self.distributional is False:
            return "q"
        return self.distributional  # type: ignore[return-value]

    @property
    def quantiles(self) -> int:
        """N, resolved for the head's kind (0 for heads without quantiles)."""
        if self.kind not in DEFAULT_QUANTILES:
            return 0
        return self.n_quantiles if self.n_quantiles is not None else DEFAULT_QUANTILES[self.kind]

    @property
    def outputs_per_action(self) -> int:
        """The head's outputs per action for one input row: C51's atoms, QR's quantiles, else one (IQN
        evaluates its head once per sampled quantile)."""
        return {"c51": self.n_atoms, "qr": self.quantiles}.get(self.kind, 1)


OPTION_NAMES = tuple(f.name for f in fields(HeadOptions))
