"""Deprecated alias of `alfie_gr00t.wire.gr00t` (moved there); it goes away in the next release."""

import importlib
import sys
import warnings

warnings.warn("alfie_gr00t.gr00t_protocol moved to alfie_gr00t.wire.gr00t; import it from there", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("alfie_gr00t.wire.gr00t")
