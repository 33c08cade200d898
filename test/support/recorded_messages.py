"""One message of every type the session recorder is contracted to store, every field set (real rclpy
message classes), for the recorder and strict-reader tests."""

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from alfie_gr00t import layout


def stamped(msg, ns):
    msg.header.stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return msg


def one_of_each(i=0):
    """One message of every type the recorder is contracted to store, with every field set."""
    t = 1_700_000_000_123_456_789 + i
    image = stamped(CompressedImage(format="jpeg", data=bytes((i + k) % 256 for k in range(300))), t)
    image.header.frame_id = "left_wide"
    state = stamped(JointState(name=list(layout.JOINT_NAMES), position=[0.01 * k + i for k in range(21)],
                               velocity=[0.5] * 21, effort=[]), t)
    trajectory = stamped(JointTrajectory(joint_names=list(layout.JOINT_NAMES)), t)
    trajectory.points = [JointTrajectoryPoint(positions=[0.1 * k + s for k in range(21)],
                                              time_from_start=Duration(sec=0, nanosec=s * 66_666_667))
                         for s in range(16)]
    status = DiagnosticStatus(level=DiagnosticStatus.WARN, name="groot_client/gate", message="stale state",
                              hardware_id="alfie", values=[KeyValue(key="kind", value="hold"),
                                                           KeyValue(key="limited", value="left_gripper,head_yaw")])
    array = stamped(DiagnosticArray(status=[status, DiagnosticStatus(level=DiagnosticStatus.OK, name="x")]), t)
    twist = Twist()
    twist.linear.x, twist.angular.z = 0.05 + i, -0.25
    floats = Float32MultiArray(data=[0.5 * k for k in range(21)])
    floats.layout.dim = [MultiArrayDimension(label="state", size=21, stride=21)]
    return [("/alfie/groot_client/debug/image/left_wide", image), ("/alfie/groot_client/debug/state", state),
            ("/alfie/groot_client/debug/task", String(data=f"pick the can {i}")),
            ("/alfie/groot_client/debug/chunk", trajectory), ("/alfie/groot_client/debug/gate", status),
            ("/diagnostics", array), ("/alfie/groot_client/cmd_vel", twist), ("/alfie/state_array", floats)]
