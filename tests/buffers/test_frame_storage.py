"""Frame-deduplicating storage: exactly SB3's observations for the same indices, at a seventh of the memory."""

import pickle

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer

from rainbow_ext import PrioritizedReplayBuffer, Rainbow
from rainbow_ext.buffers.frame_storage import FrameStackStorage, frame_stack_buffer
from tests.helpers.streams import frame_stack_vec_env, irregular_stream, vec_env_stream

ACT = spaces.Discrete(3)


def twin_buffers(cls, size, obs_space, n_envs, n_stack, **kwargs):
    plain = cls(size, obs_space, ACT, device="cpu", n_envs=n_envs, **kwargs)
    framed = frame_stack_buffer(cls, size, obs_space, ACT, n_stack, device="cpu", n_envs=n_envs, **kwargs)
    return plain, framed


def assert_same_observations(plain: ReplayBuffer, framed: ReplayBuffer) -> None:
    """Every stored (row, env): the same observation and next observation."""
    rows = np.arange(plain.size())
    for env in range(plain.n_envs):
        envs = np.full_like(rows, env)
        np.testing.assert_array_equal(framed.observations[rows, envs], plain.observations[rows, envs])
        np.testing.assert_array_equal(framed.next_observations[rows, envs], plain.next_observations[rows, envs])


@pytest.mark.parametrize(("n_envs", "channels"), [(1, 1), (3, 1), (2, 3)])
def test_vec_frame_stack_stream_matches_sb3(n_envs: int, channels: int) -> None:
    """SB3's own VecFrameStack: resets (zero-padded stacks), terminations, TimeLimit truncations,
    several envs, RGB frames, and a 9-row buffer wrapped around many times."""
    venv = frame_stack_vec_env(n_envs, channels=channels)
    assert venv.observation_space.shape[0] == 4 * channels
    plain, framed = twin_buffers(ReplayBuffer, 9 * n_envs, venv.observation_space, n_envs, 4)
    ended = 0
    for step, transition in enumerate(vec_env_stream(venv, 120)):
        plain.add(*transition)
        framed.add(*transition)
        ended += int(transition[4].sum())
        assert_same_observations(plain, framed)
        if step > 9:  # one frame per transition, plus the few kept aside at episode ends
            assert framed.frame_storage.nbytes < 0.25 * (plain.observations.nbytes + plain.next_observations.nbytes)
    assert plain.full and ended > 10


@pytest.mark.parametrize("n_stack", [1, 2, 4])
@pytest.mark.parametrize("n_envs", [1, 4])
def test_irregular_stream_matches_sb3(n_envs: int, n_stack: int) -> None:
    space = spaces.Box(0, 255, shape=(n_stack, 3, 3), dtype=np.uint8)
    plain, framed = twin_buffers(ReplayBuffer, 7 * n_envs, space, n_envs, n_stack)
    for transition in irregular_stream(n_envs, n_stack, 150, seed=n_envs + n_stack):
        plain.add(*transition)
        framed.add(*transition)
        assert_same_observations(plain, framed)


@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("cls", [NStepReplayBuffer, PrioritizedReplayBuffer])
def test_n_step_and_prioritized_samples_match(cls, n_steps: int) -> None:
    """Sampling code is untouched by the storage: samples at the same (row, env) are identical,
    n-step next observations included."""
    if cls is NStepReplayBuffer and n_steps == 1:
        cls = ReplayBuffer
    kwargs = {} if cls is ReplayBuffer else {"n_steps": n_steps, "gamma": 0.9}
    venv = frame_stack_vec_env(2, max_steps=8, seed=1)
    plain, framed = twin_buffers(cls, 22, venv.observation_space, 2, 4, **kwargs)
    rng = np.random.default_rng(0)
    for step, transition in enumerate(vec_env_stream(venv, 60, seed=1)):
        plain.add(*transition)
        framed.add(*transition)
        if step % 5:
            continue
        rows = np.arange(plain.size())
        if cls is PrioritizedReplayBuffer:
            envs = rng.integers(0, 2, size=rows.shape)
            expected, got = plain._get_samples(rows, env_indices=envs), framed._get_samples(rows, env_indices=envs)
        else:  # SB3 draws the env indices inside _get_samples
            np.random.seed(step)
            expected = plain._get_samples(rows)
            np.random.seed(step)
            got = framed._get_samples(rows)
        for name in ("observations", "next_observations", "actions", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(got, name).numpy(), getattr(expected, name).numpy(), err_msg=name)


def test_prioritized_sampling_reads_frame_storage() -> None:
    venv = frame_stack_vec_env(2, seed=2)
    plain, framed = twin_buffers(PrioritizedReplayBuffer, 40, venv.observation_space, 2, 4, n_steps=3)
    for transition in vec_env_stream(venv, 50, seed=2):
        plain.add(*transition)
        framed.add(*transition)
    np.random.seed(3)
    expected = plain.sample(16)
    np.random.seed(3)
    got = framed.sample(16)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.observations.numpy(), expected.observations.numpy())
    np.testing.assert_array_equal(got.next_observations.numpy(), expected.next_observations.numpy())
    np.testing.assert_array_equal(got.weights.numpy(), expected.weights.numpy())


def test_pickle_round_trip_gives_identical_samples() -> None:
    venv = frame_stack_vec_env(2, seed=4)
    _, framed = twin_buffers(NStepReplayBuffer, 20, venv.observation_space, 2, 4, n_steps=3, gamma=0.99)
    stream = vec_env_stream(venv, 40, seed=4)
    for _ in range(30):
        framed.add(*next(stream))
    restored = pickle.loads(pickle.dumps(framed))
    for transition in stream:  # both keep going identically after the round trip
        framed.add(*transition)
        restored.add(*transition)
    rows = np.arange(framed.size())
    for env in range(2):
        envs = np.full_like(rows, env)
        np.testing.assert_array_equal(restored.observations[rows, envs], framed.observations[rows, envs])
        np.testing.assert_array_equal(restored.next_observations[rows, envs], framed.next_observations[rows, envs])


def test_pickle_of_a_partly_filled_storage_holds_only_the_written_frames() -> None:
    """save_replay_buffer of a 1M-transition Atari buffer a quarter full must not write 5 GB of zeros;
    the restored storage is the same (whole ring, same frames) and goes on identically."""
    venv = frame_stack_vec_env(2, seed=5)
    _, framed = twin_buffers(NStepReplayBuffer, 400, venv.observation_space, 2, 4, n_steps=3, gamma=0.99)
    stream = vec_env_stream(venv, 400, seed=5)
    for _ in range(25):
        framed.add(*next(stream))
    storage = framed.frame_storage
    assert len(pickle.dumps(storage)) < len(pickle.dumps(storage.frames)) / 4  # 25 of 203 frame rows
    restored = pickle.loads(pickle.dumps(framed))
    old_format = FrameStackStorage.__new__(FrameStackStorage)  # a pickle of the whole ring, as before
    old_format.__setstate__(dict(storage.__dict__))
    for copy in (restored.frame_storage, old_format):
        for name in ("frames", "since_start", "next_kind"):
            np.testing.assert_array_equal(getattr(copy, name), getattr(storage, name), err_msg=name)
    for transition in stream:  # past the end of the ring: both go on alike
        framed.add(*transition)
        restored.add(*transition)
    assert_same_observations(framed, restored)


def test_atari_bytes_per_transition() -> None:
    """(4, 84, 84) uint8: one 7,056-byte frame per transition plus SB3's action/reward/done/timeout
    arrays and the sum tree: at most 7.2 KB (SB3: 56,468 bytes)."""
    space = spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    size = 4000
    buffer = frame_stack_buffer(PrioritizedReplayBuffer, size, space, ACT, 4, device="cpu", n_envs=4, n_steps=3)
    total = (
        buffer.observations.nbytes
        + buffer.next_observations.nbytes
        + sum(getattr(buffer, name).nbytes for name in ("actions", "rewards", "dones", "timeouts"))
        + buffer.tree.tree.nbytes
    )
    assert 84 * 84 <= total / size <= 7200
    assert sb3_bytes_per_transition(space) > 7.8 * total / size


def sb3_bytes_per_transition(space: spaces.Box) -> int:
    buffer = ReplayBuffer(10, space, ACT, device="cpu")
    return (buffer.observations.nbytes + buffer.next_observations.nbytes) // 10


def test_views_index_like_arrays() -> None:
    venv = frame_stack_vec_env(3, seed=5)
    plain, framed = twin_buffers(ReplayBuffer, 30, venv.observation_space, 3, 4)
    for transition in vec_env_stream(venv, 12, seed=5):
        plain.add(*transition)
        framed.add(*transition)
    assert framed.observations.shape == plain.observations.shape
    np.testing.assert_array_equal(framed.observations[4], plain.observations[4])  # a whole row
    np.testing.assert_array_equal(framed.next_observations[[1, 2], 1, :], plain.next_observations[[1, 2], 1, :])
    with pytest.raises(IndexError, match="indexed by"):
        framed.observations[1, 1, 0]
    with pytest.raises(TypeError, match="one whole buffer row"):
        framed.observations[[1, 2]] = plain.observations[[1, 2]]


@pytest.mark.parametrize(
    ("space", "n_stack", "size", "kwargs", "message"),
    [
        (spaces.Box(-1, 1, shape=(8,)), 4, 100, {}, "needs image observations"),
        (spaces.Box(0, 255, shape=(6, 84, 84), dtype=np.uint8), 4, 100, {}, "does not hold n_stack=4 frames"),
        (spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8), 4, 3, {}, "at least n_stack=4 rows"),
        (spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8), 0, 100, {}, "n_stack must be an integer >= 1"),
        (
            spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8),
            4,
            100,
            {"optimize_memory_usage": True, "handle_timeout_termination": False},
            "optimize_memory_usage",
        ),
    ],
)
def test_bad_input(space, n_stack, size, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        frame_stack_buffer(ReplayBuffer, size, space, ACT, n_stack, device="cpu", **kwargs)


def test_dict_buffers_refused() -> None:
    space = spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    with pytest.raises(ValueError, match="Dict observations"):
        frame_stack_buffer(DictReplayBuffer, 100, space, ACT, 4, device="cpu")


def test_next_observations_written_first_is_refused() -> None:
    storage_space = spaces.Box(0, 255, shape=(2, 3, 3), dtype=np.uint8)
    buffer = frame_stack_buffer(ReplayBuffer, 10, storage_space, ACT, 2, device="cpu")
    assert isinstance(buffer.frame_storage, FrameStackStorage)
    with pytest.raises(RuntimeError, match="before next_observations"):
        buffer.next_observations[0] = np.zeros((1, 2, 3, 3), dtype=np.uint8)


def tiny_rainbow(env, **kwargs) -> Rainbow:
    return Rainbow(
        "MlpPolicy", env, buffer_size=60, learning_starts=20, batch_size=8, policy_kwargs={"net_arch": [16]}, **kwargs
    )


@pytest.mark.parametrize("prioritized", [False, True])
def test_rainbow_chooses_frame_storage_for_stacked_frames(prioritized: bool, tmp_path) -> None:
    model = tiny_rainbow(frame_stack_vec_env(2), prioritized=prioritized, seed=0)
    assert model.frame_stack == 4
    assert isinstance(model.replay_buffer.frame_storage, FrameStackStorage)
    assert isinstance(model.replay_buffer, PrioritizedReplayBuffer if prioritized else NStepReplayBuffer)
    model.learn(60)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = Rainbow.load(tmp_path / "model", env=frame_stack_vec_env(2))
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.frame_stack == 4
    rows = np.arange(loaded.replay_buffer.size())
    np.testing.assert_array_equal(loaded.replay_buffer.observations[rows, 1], model.replay_buffer.observations[rows, 1])
    loaded.learn(20, reset_num_timesteps=False)


def test_rainbow_frame_storage_off() -> None:
    model = tiny_rainbow(frame_stack_vec_env(1), frame_storage=False)
    assert model.frame_stack == 0 and not hasattr(model.replay_buffer, "frame_storage")
    model = tiny_rainbow("CartPole-v1")  # nothing to stack: off
    assert model.frame_stack == 0 and not hasattr(model.replay_buffer, "frame_storage")


@pytest.mark.parametrize(
    ("env", "frame_storage", "message"),
    [
        ("CartPole-v1", True, "frame_storage=True needs an env that stacks image frames"),
        ("CartPole-v1", "yes", r"frame_storage must be one of True, False, or None"),
    ],
)
def test_rainbow_frame_storage_bad_input(env, frame_storage, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_rainbow(env, frame_storage=frame_storage)
