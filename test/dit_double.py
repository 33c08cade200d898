"""The GR00T N1.6-shaped policy double for the DiT swap and engine-check tests.

The double itself lives in the package (alfie_gr00t/tools/policy_double.py, where the benchmarks use
it too). `Gr00tPolicyDouble` here is that double with every group state-relative and a relative range of
±0.05 rad, so decoded actions are the state plus a small clipped delta, as a fine-tuned N1.6's arm and
head keys are: the case where decoded actions look alike even for a wrong DiT.
"""

from __future__ import annotations

import torch

from alfie_gr00t.tools import policy_double
from alfie_gr00t.tools.policy_double import (BUCKETS, HIDDEN, OUT_DIM, SA_DIM, VL_DIM, VL_TOKENS,  # noqa: F401
                                             ExportWrapper, TinyDiT, export_dit, perturbed)

SMALL_DELTA = 0.05


class Gr00tPolicyDouble(policy_double.Gr00tPolicyDouble):
    """The package double, every group relative with a ±0.05 rad range (module doc)."""

    def __init__(self, config, seed: int = 0, dtype=torch.float32):
        names = tuple(g.name for g in config.state_groups)
        statistics = policy_double.default_statistics(config.state_groups, names, relative_range=SMALL_DELTA)
        super().__init__(config, seed=seed, dtype=dtype, statistics=statistics, relative=names)
