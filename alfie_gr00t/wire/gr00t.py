"""The Isaac-GR00T PolicyServer wire format (SPEC §3, seed 003): one import for both halves.

* :mod:`alfie_gr00t.wire.gr00t_codec` — msgpack bytes <-> values for both upstream generations
  (N1.6 ``__ndarray_class__``/``__ModalityConfig_class__``; N1.7 msgpack-numpy envelopes with bin
  keys and ``__ModalityConfig__``), with limits, generation detection and no path to pickle.
* :mod:`alfie_gr00t.wire.gr00t_convert` — observation/action dicts <-> ObservationBatch and our
  (B, H, 21) chunk layout, and the ModalityConfig map both ways.

This module re-exports their public names; ``alfie_gr00t.gr00t_protocol`` is a deprecated alias of it.
"""

from alfie_gr00t.wire.gr00t_codec import (
    ENDPOINTS,
    GENERATIONS,
    MODALITY_CONFIG_MARKER,
    MODALITY_CONFIG_MARKER_N17,
    N16,
    N17,
    NDARRAY_MARKER,
    Gr00tLimits,
    Gr00tProtocolError,
    modality_markers,
    pack,
    unpack,
    unpack_generation,
)
from alfie_gr00t.wire.gr00t_convert import (
    action_dict,
    chunk_from_action_dict,
    modality_config,
    observation_batch,
    observation_dict,
    parse_modality_config,
)

__all__ = [
    "Gr00tProtocolError",
    "Gr00tLimits",
    "N16",
    "N17",
    "GENERATIONS",
    "NDARRAY_MARKER",
    "MODALITY_CONFIG_MARKER",
    "MODALITY_CONFIG_MARKER_N17",
    "ENDPOINTS",
    "pack",
    "unpack",
    "unpack_generation",
    "modality_markers",
    "modality_config",
    "observation_batch",
    "action_dict",
    "observation_dict",
    "chunk_from_action_dict",
    "parse_modality_config",
]
