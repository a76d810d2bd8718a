"""Replaying a function as a CUDA graph: one capture per input signature, replayed on fixed buffers.

A small network's update on a GPU is bound by Python and kernel launches, not by the GPU: full
Rainbow's step is a few hundred small kernels. Captured once as a ``torch.cuda.CUDAGraph``, it runs as
one launch. Capture needs static shapes and addresses: inputs are copied into fixed buffers (from
pinned host memory, without blocking), and everything else the function touches (parameters,
optimizer state, noise buffers) must be updated in place, as SB3's ``polyak_update``,
``load_state_dict`` and the optimizers do. Whatever moves them (``Module.to``, an optimizer's
``load_state_dict``) is noticed by their addresses, and the function is captured again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch as th
from torch.utils import _pytree as pytree

WARMUP_RUNS = 3  # on a side stream before capture, as PyTorch's documentation asks (lazy init, cuBLAS workspaces)
MAX_SIGNATURES = 8  # captured input signatures kept at once; beyond that the cache starts over


@dataclass
class _Graph:
    graph: th.cuda.CUDAGraph
    inputs: list[th.Tensor | None]  # the graph's input buffers on the device (None for None leaves)
    staging: dict[int, th.Tensor]  # pinned host buffers, by leaf, for inputs that come from the host
    copied: th.cuda.Event  # recorded after the last host-to-device copy out of ``staging``
    outputs: Any


class CapturedFunction:
    """``fn(*inputs)`` replayed as a CUDA graph on ``device``.

    :param fn: takes tensors (or pytrees of tensors and None, e.g. Dict observations) and returns
        tensors; the returned tensors are the graph's output buffers, overwritten by the next call
    :param state: every tensor ``fn`` reads or writes besides its inputs; a change of any address
        drops every capture
    :param restore: put ``state``'s values and the CUDA random generator back after the warm-up runs
        (for a function with side effects, such as a gradient step: its warm-up must not count)
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        state: Callable[[], Iterable[th.Tensor]],
        device: th.device,
        restore: bool,
    ) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, got {device}")
        self.device = with_index(device)
        self.fn = fn
        self.state = state
        self.restore = restore
        self.graphs: dict[Any, _Graph] = {}
        self.fingerprint: tuple[int, ...] = ()
        self.captures = 0  # how many times a graph was captured (for tests and logs)

    def __call__(self, *inputs: Any) -> Any:
        flat, spec = pytree.tree_flatten(inputs)
        signature = (spec, tuple(None if x is None else (x.shape, x.dtype) for x in flat))
        with th.cuda.device(self.device):
            if self._fingerprint() != self.fingerprint:
                self.graphs.clear()
            entry = self.graphs.get(signature)
            if entry is None:
                if len(self.graphs) >= MAX_SIGNATURES:
                    self.graphs.clear()
                entry = self.graphs[signature] = self._capture(flat, spec)
                self.fingerprint = self._fingerprint()
            entry.copied.synchronize()  # the previous call's copies have left the pinned buffers
            for leaf, (buffer, x) in enumerate(zip(entry.inputs, flat, strict=True)):
                if buffer is None:
                    continue
                if x.is_cpu:  # through pinned memory, so that the copy does not block
                    pinned = entry.staging.get(leaf)
                    if pinned is None:
                        pinned = entry.staging[leaf] = th.empty_like(x).pin_memory()
                    pinned.copy_(x)
                    x = pinned
                buffer.copy_(x, non_blocking=True)
            entry.copied.record(th.cuda.current_stream(self.device))
            entry.graph.replay()
        return entry.outputs

    def __deepcopy__(self, memo: dict[int, Any]) -> CapturedFunction:
        # Graphs cannot be copied; a copy (of a model, say) captures its own on first use.
        fn, state = copy.deepcopy(self.fn, memo), copy.deepcopy(self.state, memo)
        return CapturedFunction(fn, state, self.device, self.restore)

    def _fingerprint(self) -> tuple[int, ...]:
        return tuple(t.data_ptr() for t in self.state())

    def _capture(self, flat: list[Any], spec: Any) -> _Graph:
        inputs = [None if x is None else th.empty_like(x, device=self.device) for x in flat]
        for buffer, x in zip(inputs, flat, strict=True):
            if buffer is not None:
                buffer.copy_(x)
        args = pytree.tree_unflatten(inputs, spec)
        tensors = list(self.state()) if self.restore else []
        saved = [t.detach().clone() for t in tensors]
        rng = th.cuda.get_rng_state(self.device)
        current = th.cuda.current_stream(self.device)
        try:
            side = th.cuda.Stream(self.device)
            side.wait_stream(current)
            with th.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    self.fn(*args)
            current.wait_stream(side)
            graph = th.cuda.CUDAGraph()
            with th.cuda.graph(graph):
                outputs = self.fn(*args)
        except Exception as error:
            name = getattr(self.fn, "__qualname__", None) or getattr(getattr(self.fn, "func", None), "__qualname__", "")
            raise RuntimeError(
                f"capturing {name} as a CUDA graph failed ({type(error).__name__}: {error}); "
                "Rainbow(cuda_graphs=False) runs it eagerly"
            ) from error
        finally:  # the warm-up runs do not count, whatever happened
            with th.no_grad():
                for tensor, value in zip(tensors, saved, strict=True):
                    tensor.copy_(value)
            th.cuda.set_rng_state(rng, self.device)
        self.captures += 1
        return _Graph(graph, inputs, {}, th.cuda.Event(), outputs)


def with_index(device: th.device) -> th.device:
    """``cuda`` as ``cuda:<current device>``: SB3 resolves ``auto`` to ``cuda``, while tensors report
    ``cuda:0``, and the two do not compare equal."""
    if device.type != "cuda" or device.index is not None:
        return device
    return th.device("cuda", th.cuda.current_device())
