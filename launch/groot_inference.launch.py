"""Start groot_server and groot_client (and optionally the synthetic robot) in namespace `alfie`.

    ros2 launch alfie_gr00t groot_inference.launch.py mock_mode:=true
    ros2 topic pub --once /alfie/groot_client/activate std_msgs/Bool "data: true"

Parameters come from the installed config/*.yaml; launch arguments override them, typed by
alfie_gr00t.launch_args (the same conversion the single-process bringup uses).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from alfie_gr00t.launch_args import LAUNCH_ARGUMENTS, config_path, plan_from_arguments

NAMESPACE = "alfie"


def _nodes(context, *args, **kwargs):
    values = {name: context.launch_configurations[name] for name in LAUNCH_ARGUMENTS}
    plan = plan_from_arguments(values)
    actions = []
    if plan.launch_server:
        actions.append(Node(package="alfie_gr00t", executable="groot_server", name="groot_server",
                            namespace=NAMESPACE, output="screen",
                            parameters=[config_path("groot_server.yaml"), plan.server_params]))
    actions.append(Node(package="alfie_gr00t", executable="groot_client", name="groot_client",
                        namespace=NAMESPACE, output="screen",
                        parameters=[config_path("groot_client.yaml"), plan.client_params]))
    if plan.use_sim_robot:
        actions.append(Node(package="alfie_gr00t", executable="groot_sim_robot", name="groot_sim_robot",
                            namespace=NAMESPACE, output="screen"))
    return actions


def generate_launch_description():
    arguments = [DeclareLaunchArgument(name, default_value=default, description=description)
                 for name, (default, description) in LAUNCH_ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
