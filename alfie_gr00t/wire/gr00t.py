"""The Isaac-GR00T PolicyServer wire format (docs/design.md#isaac-gr00ts-protocol): one import for both halves.

* :mod:`alfie_gr00t.wire.gr00t_codec` — msgpack bytes <-> values for both upstream generations
  (N1.6 ``__ndarray_class__``/``__ModalityConfig_class__``; N1.7 msgpack-numpy envelopes with bin
  keys and ``__ModalityConfig__``), with limits, generation detection and no path to pickle.
* :mod:`alfie_gr00t.wire.gr00t_convert` — observation/action dicts <-> ObservationBatch and our
  (B, H, 21) chunk layout, and the ModalityConfig map both ways.

This module re-exports their public names; ``alfie_gr00t.gr00t_protocol`` is a deprecated alias of it.
"""

from alfie_gr00t.wire import gr00t_codec, gr00t_convert
from alfie_gr00t.wire.gr00t_codec import *  # noqa: F401,F403 - the codec's public names
from alfie_gr00t.wire.gr00t_convert import *  # noqa: F401,F403 - the conversions' public names

__all__ = [*gr00t_codec.__all__, *gr00t_convert.__all__]
