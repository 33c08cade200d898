"""The developer's desk and set-up: bringup (all nodes in one process), benchmarks, engine build and check,
the local Triton launcher. May import every other layer; nothing imports tools/."""
