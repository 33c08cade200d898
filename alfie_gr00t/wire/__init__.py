"""The wire, on both machines: decoded observations, our seed protocol and Isaac-GR00T's, ZeroMQ transport
and image codecs. Imports only the base (layout, stats, settings)."""
