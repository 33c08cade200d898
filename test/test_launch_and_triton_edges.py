"""Edges a review found, kept as regression tests: launch-argument validation
under real `ros2 launch` composition (launch's own settings, inclusion from a parent file, a token
file that is not UTF-8), and that each observation's capture time and chunk prefix reach the policy
through Triton as they do in-process. Each failed on the code as reviewed."""

import types

import numpy as np
import pytest

from alfie_gr00t.engines.base import ChunkPrefix, EngineConfig, ObservationBatch
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.engines.registry import create_engine

from support.launch_file import launch_context, load_launch_file, stub_launch_modules
from support.triton_server import serving_triton


# -- launch: names that `launch` itself reads from the launch configurations ------------------------

@pytest.mark.parametrize("name, value", [
    # ExecuteProcess/Node: `prefix` defaults to LaunchConfiguration('launch-prefix'), filtered by
    # 'launch-prefix-filter'; ExecuteLocal reads 'emulate_tty' from the launch configurations.
    ("launch-prefix", "gdb -ex run --args"),
    ("launch-prefix-filter", "groot_server"),
    ("emulate_tty", "true"),
])
def test_launch_own_configurations_are_not_unknown_arguments(monkeypatch, name, value):
    """`ros2 launch alfie_gr00t groot_inference.launch.py launch-prefix:='gdb -ex run --args'` (or
    emulate_tty:=true) is standard launch usage; the unknown-argument check must not refuse it."""
    stub_launch_modules(monkeypatch)
    module = load_launch_file()
    context = types.SimpleNamespace(launch_configurations=launch_context(mock_mode="true", **{name: value}),
                                    argv=["mock_mode:=true", f"{name}:={value}"])
    nodes = module._nodes(context)
    assert [n.kwargs["name"] for n in nodes] == ["groot_server", "groot_client"]


def test_included_from_a_parent_launch_file(monkeypatch):
    """A robot bringup that includes this file (IncludeLaunchDescription, the standard way to compose
    launch files) shares its launch configurations with it: the parent's own declared arguments
    (here `robot_model`) are in context.launch_configurations and must not fail this launch."""
    stub_launch_modules(monkeypatch)
    module = load_launch_file()
    configurations = launch_context(mock_mode="true", use_sim_robot="true")
    configurations["robot_model"] = "alfie_v2"  # DeclareLaunchArgument in the parent, user passed it there
    context = types.SimpleNamespace(launch_configurations=configurations, argv=["robot_model:=alfie_v2"])
    with pytest.raises(ValueError, match="robot_model.*strict_arguments:=false"):  # the message says what to do
        module._nodes(context)
    configurations["strict_arguments"] = "false"  # what the parent passes in launch_arguments
    nodes = module._nodes(context)
    assert [n.kwargs["name"] for n in nodes] == ["groot_server", "groot_client", "groot_sim_robot"]


# -- Triton: the per-observation timestamp and chunk prefix -----------------------------------------

@pytest.fixture(scope="module")
def triton_trajectory():
    """The shipped model with the mock's `trajectory` policy (model.py passes mock_policy through)."""
    with serving_triton({"groot_policy": {"params": {"mock_policy": "trajectory"}}}, "ag_triton_edges_") as server:
        yield server


def _batch(config: EngineConfig, prefix) -> ObservationBatch:
    rng = np.random.default_rng(7)
    shape = (1, config.image_height, config.image_width, 3)
    return ObservationBatch(
        images={name: rng.integers(0, 256, shape, dtype=np.uint8) for name in config.camera_names},
        state=rng.uniform(-0.1, 0.1, (1, config.action_dim)).astype(np.float32),
        language=("pick up the can",), timestamps=(1000.0,), prefixes=(prefix,))


@pytest.mark.parametrize("with_prefix", [False, True])
def test_triton_actions_follow_the_observation_timestamp_and_prefix(triton_trajectory, with_prefix):
    """The same observation through Triton and through the in-process engine gives the same chunk:
    the mock trajectory is a function of the observation's capture time (docs/design.md#mock-policies), and a request's
    real-time-chunking prefix (`send_action_prefix: true`, the default) is continued. The Triton
    engine sends neither, so the model falls back to Triton's wall clock and drops the prefix."""
    config = EngineConfig(engine="triton", triton_url=triton_trajectory.grpc_url, triton_timeout_ms=5000.0,
                          mock_policy="trajectory")
    prefix = ChunkPrefix(np.full((4, config.action_dim), 0.05, dtype=np.float32), 3) if with_prefix else None
    batch = _batch(config, prefix)
    reference = MockEngine(EngineConfig(mock_mode=True, mock_policy="trajectory")).infer(batch).actions
    engine = create_engine(config)
    try:
        actions = engine.infer(batch).actions
    finally:
        engine.close()
    np.testing.assert_allclose(actions, reference, atol=1e-5)


# -- api_token:=file:PATH that is not UTF-8 -------------------------------------------------------------

def test_api_token_file_that_is_not_utf8_names_the_argument_and_file(tmp_path):
    """A token file saved as UTF-16 (a Windows editor's "Unicode") fails with a bare
    "'utf-8' codec can't decode byte 0xff" under `ros2 launch`: neither api_token nor the path
    is named, unlike the missing/unreadable/empty cases."""
    from alfie_gr00t.nodes.launch_args import plan_from_arguments

    token_file = tmp_path / "token"
    token_file.write_bytes("s3cret\n".encode("utf-16"))
    with pytest.raises(ValueError) as info:
        plan_from_arguments({"api_token": f"file:{token_file}"})
    assert "api_token" in str(info.value) and str(token_file) in str(info.value)
