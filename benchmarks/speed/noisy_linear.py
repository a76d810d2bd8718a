"""NoisyLinear's two forward forms side by side: building the noisy weight ``mu_w + sigma_w * eps_w``
(with ``eps_w = eps_out eps_in^T`` kept per noise draw), or the factorised products
``mu_w x + eps_out * (sigma_w (eps_in * x))``, which never build a q x p matrix.

Times one call (forward only without gradients, as when acting or computing targets; forward and
backward with them, as in a gradient step) for the noisy layers of the shipped networks and batches
of 1, 2, 8 and 32 rows. The forms alternate within each round; the table gives medians over rounds.
``NoisyLinear`` picks the factorised form for a layer of at least ``FACTORISED_MIN_WEIGHTS`` weights
fed at most ``FACTORISED_MAX_ROWS`` rows: this script is where those thresholds come from.

    python benchmarks/speed/noisy_linear.py --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch as th

from rainbow_ext import NoisyLinear
from rainbow_ext.layers import FACTORISED_MAX_ROWS, FACTORISED_MIN_WEIGHTS

# (in, out) of noisy layers in the shipped networks
LAYERS = {
    "CartPole hidden 64x64": (64, 64),
    "CartPole advantage out 64 -> 2x51": (64, 102),
    "MinAtar hidden 1600 -> 128": (1600, 128),
    "MinAtar advantage out 128 -> 6x51": (128, 306),
    "Atari advantage out 512 -> 18x51": (512, 918),
    "Atari hidden 3136 -> 512": (3136, 512),
}
FORMS = {"noisy weight": -1, "factorised": 1 << 62}  # values for the layer's _factorised_max_numel


def time_call(layer: NoisyLinear, x: th.Tensor, grad: bool, calls: int) -> float:
    """Median seconds of one call over ``calls`` calls."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        if grad:
            layer(x).sum().backward()
        else:
            with th.no_grad():
                layer(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50, help="calls per form and round")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 8, 32])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    th.manual_seed(0)

    print(f"factorised form used for >= {FACTORISED_MIN_WEIGHTS} weights and <= {FACTORISED_MAX_ROWS} rows\n")
    print("| layer (in x out) | rows | pass | noisy weight (us) | factorised (us) | factorised / noisy weight |")
    print("|---|---|---|---|---|---|")
    for name, (n_in, n_out) in LAYERS.items():
        layer = NoisyLinear(n_in, n_out)
        for rows in args.rows:
            for grad in (False, True):
                x = th.randn(rows, n_in, requires_grad=grad)
                medians: dict[str, list[float]] = {form: [] for form in FORMS}
                for round_ in range(args.rounds + 1):
                    for form, max_numel in FORMS.items():
                        layer._factorised_max_numel = max_numel
                        seconds = time_call(layer, x, grad, args.calls)
                        if round_ > 0:  # the first round warms up
                            medians[form].append(seconds)
                weight, factorised = (statistics.median(medians[form]) * 1e6 for form in FORMS)
                print(
                    f"| {name} ({n_in}x{n_out}) | {rows} | {'forward + backward' if grad else 'forward, no grad'} | "
                    f"{weight:.1f} | {factorised:.1f} | {factorised / weight:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
