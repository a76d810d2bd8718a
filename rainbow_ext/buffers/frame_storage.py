"""Frame-deduplicating storage for stacked image observations.

With a stack of k frames, an observation shares k - 1 frames with the one before it, so SB3's
``ReplayBuffer``, which stores every observation and next observation in full, holds each frame 2k
times (56 KB per Atari transition). :class:`FrameStackStorage` holds each frame once, in a ring of
frame rows beside the buffer's rows, and rebuilds both stacks from it when they are read, zeroing the
frames from before an episode's start as SB3's ``VecFrameStack`` (and ale-py's vector env) do at a
reset (Mnih et al. 2015 and Dopamine store Atari replay the same way).

It is storage only. :func:`frame_stack_buffer` puts it behind the ``observations`` and
``next_observations`` of any SB3 replay buffer class, so uniform or prioritized sampling and n-step
returns read from it unchanged; no buffer class is written per combination.

What is kept, per env:

- ``frames[row]``: the newest frame of the observation added at that row; one frame per transition.
- ``since_start``: how many earlier frames of the same stream precede it in the ring (at most k - 1).
  Frames further back are the ``k - 1`` older frames of the stream's first observation: zeros in the
  usual case, else kept in ``prefixes``.
- ``next_kind``: 0 when the next observation is the following row's observation (stored already);
  otherwise the next observation's newest frame (episode ends, and the newest row) or, for a stream
  that is not a shift register, the whole next stack, is kept aside.

Nothing is assumed about episode boundaries: an observation continues the previous row's stream only
when it equals that row's next observation, so any stream (resets, truncations, life losses, several
envs, wrap-around) comes back exactly as it went in.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, unwrap_vec_wrapper

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency of SB3's extras only
    psutil = None

# next_kind values
_LINKED, _NEXT_FRAME, _NEXT_STACK = 0, 1, 2


class FrameStackStorage:
    """One copy of every frame of a frame-stacked observation stream, for ``buffer_size`` rows of
    ``n_envs`` transitions.

    :param buffer_size: rows of the replay buffer (transitions per env)
    :param n_envs: transitions per row
    :param observation_space: image space ``(n_stack * channels, height, width)``, stack on axis 0
        (the layout of ``VecFrameStack`` after SB3's ``VecTransposeImage``, and of ale-py's vector env)
    :param n_stack: frames per observation
    """

    def __init__(self, buffer_size: int, n_envs: int, observation_space: spaces.Space, n_stack: int) -> None:
        check_frame_stack(observation_space, n_stack)
        if buffer_size < n_stack:
            raise ValueError(
                f"a frame-stack buffer needs at least n_stack={n_stack} rows per env, got {buffer_size}; "
                "raise buffer_size"
            )
        assert isinstance(observation_space, spaces.Box)
        self.n_stack = n_stack
        self.n_envs = n_envs
        self.buffer_size = buffer_size
        self.obs_shape: tuple[int, ...] = tuple(observation_space.shape)
        self.frame_shape = (self.obs_shape[0] // n_stack, *self.obs_shape[1:])
        self.dtype = observation_space.dtype
        # k - 1 rows more than the buffer, so the oldest transition's older frames are still there.
        self.n_rows = buffer_size + n_stack - 1
        self.frames = np.zeros((self.n_rows, n_envs, *self.frame_shape), dtype=self.dtype)
        self.since_start = np.zeros((self.n_rows, n_envs), dtype=np.uint8)
        self.next_kind = np.zeros((self.n_rows, n_envs), dtype=np.uint8)
        # Kept aside, keyed by (frame row, env); dropped when the frame row is overwritten.
        self.prefixes: dict[tuple[int, int], np.ndarray] = {}
        self.next_frames: dict[tuple[int, int], np.ndarray] = {}
        self.next_stacks: dict[tuple[int, int], np.ndarray] = {}
        self.n_added = 0  # add number a is stored in frame row a % n_rows
        self.last_pos = -1  # buffer row of the latest add
        self.last_next: np.ndarray | None = None  # latest next observations, (n_envs, k, *frame_shape)
        self.last_regular = np.zeros(n_envs, dtype=bool)  # latest next obs = obs shifted by one frame
        self._pending_obs: tuple[int, np.ndarray] | None = None  # observations[pos] awaiting next_observations[pos]

    # Pickled (save_replay_buffer) with only the frame rows written so far: a 1M-transition Atari buffer
    # holds 7 GB of frames from the start, and a quarter-full one need not write the zeros of the rest.
    _RING: tuple[str, ...] = ("frames", "since_start", "next_kind")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        written = min(self.n_added, self.n_rows)
        for name in self._RING:
            state[name] = state[name][:written]  # a view: pickle writes only these rows
        state["_rows_written"] = written
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        written = state.pop("_rows_written", None)  # absent in pickles of whole rings
        if written is not None:
            for name in self._RING:
                part = state[name]
                state[name] = np.zeros((state["n_rows"], *part.shape[1:]), dtype=part.dtype)
                state[name][:written] = part
        self.__dict__.update(state)

    @property
    def nbytes(self) -> int:
        """Bytes held: the frame ring, its per-slot bookkeeping and everything kept aside."""
        aside = sum(a.nbytes for d in (self.prefixes, self.next_frames, self.next_stacks) for a in d.values())
        return self.frames.nbytes + self.since_start.nbytes + self.next_kind.nbytes + aside

    def add(self, pos: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Store the observations and next observations ``(n_envs, *obs_shape)`` of buffer row ``pos``."""
        k, n_envs = self.n_stack, self.n_envs
        obs = np.asarray(obs, dtype=self.dtype).reshape(n_envs, k, *self.frame_shape)
        next_obs = np.array(next_obs, dtype=self.dtype).reshape(n_envs, k, *self.frame_shape)
        row = self.n_added % self.n_rows
        prev = (row - 1) % self.n_rows
        for store in (self.prefixes, self.next_frames, self.next_stacks):
            for env in range(n_envs):
                store.pop((row, env), None)

        # The stream goes on where the previous row's next observation is this observation (and that
        # next observation was the previous observation shifted by one frame, so its frames are stored).
        linked = np.zeros(n_envs, dtype=bool)
        if self.last_next is not None and pos == (self.last_pos + 1) % self.buffer_size:
            linked = self.last_regular & (obs == self.last_next).reshape(n_envs, -1).all(axis=1)
        self.frames[row] = obs[:, -1]
        self.since_start[row] = np.where(linked, np.minimum(self.since_start[prev] + 1, k - 1), 0)
        for env in np.flatnonzero(linked):
            self.next_kind[prev, env] = _LINKED
            self.next_frames.pop((prev, int(env)), None)
        for env in np.flatnonzero(~linked):
            if obs[env, :-1].any():  # a stream's first observation, not zero-padded
                self.prefixes[(row, int(env))] = obs[env, :-1].copy()

        regular = (next_obs[:, :-1] == obs[:, 1:]).reshape(n_envs, -1).all(axis=1)
        for env in range(n_envs):
            if regular[env]:
                self.next_kind[row, env] = _NEXT_FRAME
                self.next_frames[(row, env)] = next_obs[env, -1].copy()
            else:
                self.next_kind[row, env] = _NEXT_STACK
                self.next_stacks[(row, env)] = next_obs[env].copy()
        self.last_next = next_obs
        self.last_regular = regular
        self.last_pos = pos
        self.n_added += 1

    def frame_rows(self, rows: np.ndarray) -> np.ndarray:
        """Frame rows of buffer rows (rows are written in order, the latest at ``last_pos``)."""
        return (self.n_added - 1 - (self.last_pos - rows) % self.buffer_size) % self.n_rows

    def gather(self, rows: np.ndarray, envs: np.ndarray, next_observations: bool = False) -> np.ndarray:
        """Observations (or next observations) of the transitions at ``(rows[i], envs[i])``,
        ``(len(rows), *obs_shape)``."""
        k = self.n_stack
        frame_rows = self.frame_rows(rows)
        since_start = self.since_start[frame_rows, envs]
        # oldest to newest; a next observation is the observation's stack one frame on, the next frame last
        shift = int(next_observations)
        sources = (frame_rows[:, None] + np.arange(1 - k + shift, 1 + shift)) % self.n_rows
        stacks = self.frames[sources, envs[:, None]]  # (batch, k, *frame_shape)
        for i in np.flatnonzero(since_start < k - 1 - shift):
            # The first frames come from before the stream's first observation: its prefix, or zeros.
            d = int(since_start[i])
            prefix = self.prefixes.get((int(frame_rows[i] - d) % self.n_rows, int(envs[i])))
            stacks[i, : k - 1 - d - shift] = 0 if prefix is None else prefix[d + shift :]
        if next_observations:
            kinds = self.next_kind[frame_rows, envs]
            for i in np.flatnonzero(kinds == _NEXT_FRAME):
                stacks[i, -1] = self.next_frames[(int(frame_rows[i]), int(envs[i]))]
            for i in np.flatnonzero(kinds == _NEXT_STACK):
                stacks[i] = self.next_stacks[(int(frame_rows[i]), int(envs[i]))]
        return stacks.reshape(len(frame_rows), *self.obs_shape)


class StackView:
    """Stands in for a replay buffer's ``observations`` or ``next_observations`` array: SB3's
    ``add`` writes ``view[pos] = obs`` and ``_get_samples`` reads ``view[rows, envs]``; both go
    through the :class:`FrameStackStorage`."""

    def __init__(self, storage: FrameStackStorage, next_observations: bool) -> None:
        self.storage = storage
        self.next_observations = next_observations

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.storage.buffer_size, self.storage.n_envs, *self.storage.obs_shape)

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    @property
    def nbytes(self) -> int:
        """Both views share one storage; it is counted once, under ``observations``."""
        return 0 if self.next_observations else self.storage.nbytes

    def __len__(self) -> int:
        return self.storage.buffer_size

    def __setitem__(self, pos: Any, value: np.ndarray) -> None:
        if not isinstance(pos, (int, np.integer)):
            raise TypeError(f"frame-stack storage is written one whole buffer row at a time, got index {pos!r}")
        storage = self.storage
        if not self.next_observations:
            storage._pending_obs = (int(pos), np.array(value, dtype=storage.dtype))
            return
        if storage._pending_obs is None or storage._pending_obs[0] != pos:
            raise RuntimeError("frame-stack storage: write observations[pos] before next_observations[pos]")
        storage.add(int(pos), storage._pending_obs[1], value)
        storage._pending_obs = None

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 2 and not all(_is_full_slice(k) for k in key[2:]):
            raise IndexError(f"frame-stack storage is indexed by [rows, envs], got {key!r}")
        rows = np.asarray(key[0])
        if len(key) == 1 or _is_full_slice(key[1]):
            rows, envs = np.broadcast_arrays(rows[..., None], np.arange(self.storage.n_envs))
        else:
            rows, envs = np.broadcast_arrays(rows, np.asarray(key[1]))
        if not (np.issubdtype(rows.dtype, np.integer) and np.issubdtype(envs.dtype, np.integer)):
            raise IndexError(f"frame-stack storage takes integer rows and envs, got {key!r}")
        flat = self.storage.gather(
            rows.ravel() % self.storage.buffer_size, envs.ravel(), next_observations=self.next_observations
        )
        return flat.reshape(*rows.shape, *self.storage.obs_shape)


def _is_full_slice(key: Any) -> bool:
    return isinstance(key, slice) and key == slice(None)


def check_frame_stack(observation_space: spaces.Space, n_stack: int) -> None:
    """Frame storage needs image observations ``(n_stack * channels, height, width)``."""
    if not isinstance(n_stack, (int, np.integer)) or n_stack < 1:
        raise ValueError(f"n_stack must be an integer >= 1, got {n_stack!r}")
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3):
        raise ValueError(
            "frame stacking needs image observations (n_stack * channels, height, width), got "
            f"{observation_space}; use frame_storage=False (or no frame stack) for other observations"
        )
    if observation_space.shape[0] % n_stack:
        raise ValueError(
            f"observation shape {observation_space.shape} does not hold n_stack={n_stack} frames on axis 0 "
            "(frame storage expects channel-first stacks, as VecFrameStack gives after VecTransposeImage)"
        )


def stacked_frames(env: VecEnv) -> int | None:
    """Frames per observation of an env that stacks image frames: SB3's ``VecFrameStack`` anywhere
    in its wrappers, or a base VecEnv that stacks by itself and says so in ``n_stack`` (ale-py's
    vector env adapter). ``None`` otherwise, or when the observations are not stacks of images."""
    frame_stack = unwrap_vec_wrapper(env, VecFrameStack)
    stacker = frame_stack.stacked_obs if frame_stack is not None else env.unwrapped  # type: ignore[attr-defined]
    n_stack = getattr(stacker, "n_stack", None)
    if n_stack is None:
        return None
    try:
        check_frame_stack(env.observation_space, n_stack)
    except ValueError:
        return None
    return int(n_stack)


def frame_stack_buffer(
    buffer_class: type[ReplayBuffer],
    buffer_size: int,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    n_stack: int,
    **buffer_kwargs: Any,
) -> ReplayBuffer:
    """A ``buffer_class`` replay buffer (SB3's ``ReplayBuffer``, ``NStepReplayBuffer``, or
    :class:`~rainbow_ext.buffers.PrioritizedReplayBuffer`) whose observations live in a
    :class:`FrameStackStorage`.

    The buffer is built with a one-element placeholder observation space, so SB3 never allocates its
    two full observation arrays (56 GB for 1M Atari transitions, more than many machines can even
    reserve), then given the storage.
    """
    check_frame_stack(observation_space, n_stack)
    if issubclass(buffer_class, DictReplayBuffer):
        raise ValueError("frame-stack storage does not support Dict observations")
    if buffer_kwargs.get("optimize_memory_usage"):
        raise ValueError(
            "frame-stack storage already stores each frame once; it replaces optimize_memory_usage, which must be False"
        )
    placeholder = spaces.Box(0, 1, shape=(1,), dtype=observation_space.dtype)  # type: ignore[arg-type]
    buffer = buffer_class(buffer_size, placeholder, action_space, **buffer_kwargs)
    storage = FrameStackStorage(buffer.buffer_size, buffer.n_envs, observation_space, n_stack)
    buffer.observation_space = observation_space
    buffer.obs_shape = tuple(observation_space.shape)  # type: ignore[assignment]
    buffer.frame_storage = storage  # type: ignore[attr-defined]
    buffer.observations = StackView(storage, next_observations=False)  # type: ignore[assignment]
    buffer.next_observations = StackView(storage, next_observations=True)  # type: ignore[assignment]
    if psutil is not None and storage.nbytes > psutil.virtual_memory().available:
        warnings.warn(
            "This system does not have apparently enough memory to store the complete replay buffer "
            f"{storage.nbytes / 1e9:.2f}GB > {psutil.virtual_memory().available / 1e9:.2f}GB",
            stacklevel=2,
        )
    return buffer
