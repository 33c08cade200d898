"""groot_sim_robot: a synthetic Alfie for demos and tests.

Publishes four moving test-pattern cameras (640x480 rgb8, so the client's resize runs)
and the joint state + base twist, and follows the client's commands (`joint_commands`, or
the first point of `joint_trajectory` in ros2_control mode) as a first-order system, so the
closed loop shows up in the state and the statuses.
"""

from __future__ import annotations

import array
import sys

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from alfie_gr00t import layout
from alfie_gr00t.nodes.runner import run_node


class SimRobot(Node):
    def __init__(self, **node_kwargs):
        super().__init__("groot_sim_robot", **node_kwargs)
        declare = self.declare_parameter
        self.camera_topics = declare("camera_topics", [f"/alfie/cameras/{n}/image_raw" for n in layout.CAMERA_NAMES]).value
        self.width = declare("camera_width", 640).value
        self.height = declare("camera_height", 480).value
        self.camera_rate_hz = declare("camera_rate_hz", 30.0).value
        self.state_rate_hz = declare("state_rate_hz", 50.0).value
        self.time_constant_s = declare("time_constant_s", 0.1).value
        self.joint_names = declare("joint_names", list(layout.JOINT_NAMES)).value
        self.initial_positions = declare("initial_positions", [0.0] * 6 + [0.3, 0.4, -0.5, 0.2, 0.1, 0.4,
                                                                          -0.3, 0.4, 0.5, 0.2, -0.1, 0.4,
                                                                          0.2, -0.3, 0.05]).value
        self.command_ns = declare("command_namespace", "/alfie/groot_client").value
        self.state = np.asarray(self.initial_positions, dtype=np.float64)
        self.target = self.state.copy()
        self.target[layout.BASE_DIMS] = 0.0
        self.frame_count = 0
        self.commands_received = 0

    def start(self) -> None:
        self.camera_pubs = [self.create_publisher(Image, t, qos_profile_sensor_data) for t in self.camera_topics]
        self.state_pub = self.create_publisher(JointState, "/alfie/joint_states", 10)
        self.twist_pub = self.create_publisher(Twist, "/alfie/base_velocity", 10)
        self.create_subscription(JointState, f"{self.command_ns}/joint_commands", self._on_joints, 10)
        self.create_subscription(JointTrajectory, f"{self.command_ns}/joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(Twist, f"{self.command_ns}/cmd_vel", self._on_twist, 10)
        y, x = np.mgrid[0:self.height, 0:self.width]
        self._pattern = np.stack([x * 255 // self.width, y * 255 // self.height, (x ^ y) & 0xFF], -1).astype(np.uint8)
        self.create_timer(1.0 / self.camera_rate_hz, self._publish_cameras)
        self.create_timer(1.0 / self.state_rate_hz, self._step)
        self.get_logger().info(f"sim robot: {len(self.camera_pubs)} cameras {self.width}x{self.height} "
                               f"@ {self.camera_rate_hz} Hz, state @ {self.state_rate_hz} Hz")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if msg.points:
            self._follow(msg.joint_names, msg.points[0].positions)

    def _on_joints(self, msg: JointState) -> None:
        self._follow(msg.name, msg.position)

    def _follow(self, names, positions) -> None:
        index = {n: i for i, n in enumerate(self.joint_names)}
        for name, position in zip(names, positions):
            if name in index and np.isfinite(position):
                self.target[index[name]] = position
        self.commands_received += 1

    def _on_twist(self, msg: Twist) -> None:
        self.target[layout.BASE_DIMS] = (msg.linear.x, msg.linear.y, msg.linear.z,
                                         msg.angular.x, msg.angular.y, msg.angular.z)

    def _step(self) -> None:
        """First-order response toward the commanded targets, then publish the measured state."""
        alpha = min(1.0, (1.0 / self.state_rate_hz) / max(self.time_constant_s, 1e-3))
        self.state += alpha * (self.target - self.state)
        stamp = self.get_clock().now().to_msg()
        joints = JointState()
        joints.header.stamp = stamp
        joints.name = list(self.joint_names[layout.JOINT_DIMS])
        joints.position = [float(v) for v in self.state[layout.JOINT_DIMS]]
        twist = Twist()
        (twist.linear.x, twist.linear.y, twist.linear.z,
         twist.angular.x, twist.angular.y, twist.angular.z) = (float(v) for v in self.state[layout.BASE_DIMS])
        self.state_pub.publish(joints)
        self.twist_pub.publish(twist)

    def _publish_cameras(self) -> None:
        self.frame_count += 1
        stamp = self.get_clock().now().to_msg()
        for i, pub in enumerate(self.camera_pubs):
            frame = np.roll(self._pattern, shift=4 * self.frame_count + 40 * i, axis=1)
            msg = Image(height=self.height, width=self.width, encoding="rgb8", step=self.width * 3)
            msg.header.stamp = stamp
            msg.header.frame_id = f"camera_{i}"
            msg.data = array.array("B", frame.tobytes())
            pub.publish(msg)

    def close(self) -> None:
        pass


def main(args=None) -> int:
    return run_node(SimRobot, args)


if __name__ == "__main__":
    sys.exit(main())
