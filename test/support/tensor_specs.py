"""Inputs and outputs as a backend would declare them, for the single-graph contract's checks."""

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.engines.contract import TensorSpec

H, W = layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH


def specs(image="nhwc", batch="B", cameras=layout.CAMERA_NAMES, state=("B", 21), tokens=None,
          actions=("B", 16, 21), action_dtype=np.float32, state_dtype=np.float32):
    """Inputs/outputs as a backend would declare them (symbolic dims allowed)."""
    inputs = []
    for cam in cameras:
        if image == "nhwc":
            inputs.append(TensorSpec.of(cam, (batch, H, W, 3), np.uint8))
        else:
            inputs.append(TensorSpec.of(cam, (batch, 3, H, W), np.float16 if image == "nchw16" else np.float32))
    inputs.append(TensorSpec.of("state", state, state_dtype))
    if tokens:
        inputs.append(TensorSpec.of("language_tokens", ("B", tokens), np.int64))
    return inputs, [TensorSpec.of("actions", actions, action_dtype)]
