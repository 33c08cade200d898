"""Start groot_server and groot_client (and optionally the synthetic robot) in namespace `alfie`.

    ros2 launch alfie_gr00t groot_inference.launch.py mock_mode:=true
    ros2 topic pub --once -w 1 /alfie/groot_client/activate std_msgs/msg/Bool "{data: true}"

Parameters come from the installed config/*.yaml. An argument left at its (empty) default
changes nothing; one the user passes overrides the YAML, typed by alfie_gr00t.nodes.launch_args
(the same code the single-process bringup uses). An unknown `name:=value` fails the launch
with the list of known arguments. `ros2 launch alfie_gr00t groot_inference.launch.py -s`
lists them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from alfie_gr00t.nodes.launch_args import ARGUMENTS, arguments_from_launch_configurations, config_path, plan_from_arguments

NAMESPACE = "alfie"


def _parameters(config_name: str, overrides: dict) -> list:
    """The installed YAML, then the arguments the user passed (no empty dict: nothing to override)."""
    return [config_path(config_name), overrides] if overrides else [config_path(config_name)]


def _nodes(context, *args, **kwargs):
    # Every `name:=value` the user passed is a launch configuration, declared or not: validate them all.
    plan = plan_from_arguments(arguments_from_launch_configurations(context.launch_configurations))
    actions = []
    if plan.launch_server:
        actions.append(Node(package="alfie_gr00t", executable="groot_server", name="groot_server",
                            namespace=NAMESPACE, output="screen",
                            parameters=_parameters("groot_server.yaml", plan.server_params)))
    actions.append(Node(package="alfie_gr00t", executable="groot_client", name="groot_client",
                        namespace=NAMESPACE, output="screen",
                        parameters=_parameters("groot_client.yaml", plan.client_params)))
    if plan.use_sim_robot:
        actions.append(Node(package="alfie_gr00t", executable="groot_sim_robot", name="groot_sim_robot",
                            namespace=NAMESPACE, output="screen",
                            parameters=[plan.sim_params] if plan.sim_params else None))
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=argument.default, description=argument.description,
                                       **({"choices": ["", *argument.choices]} if argument.choices else {}))
                 for name, argument in ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
