import sys
from pathlib import Path

import torch as th

# Probe environments and helpers live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
# Tiny networks: one thread is fastest and keeps timings independent of the machine's core count.
th.set_num_threads(1)
