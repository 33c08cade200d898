"""Camera subscriptions follow the driver's reliability: reliable when every publisher offers it (lost
fragments of a large raw frame are resent), best effort otherwise (a reliable subscription would never
match a best-effort driver), kept as they are while no publisher exists; keep-last 1 either way."""

import threading
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from alfie_gr00t.nodes.camera_qos import CameraSubscriptions, camera_qos, camera_reliability

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT


def test_reliable_only_when_every_publisher_offers_it():
    assert camera_reliability([RELIABLE]) == RELIABLE
    assert camera_reliability([RELIABLE, RELIABLE]) == RELIABLE
    assert camera_reliability([RELIABLE, BEST_EFFORT]) == BEST_EFFORT
    assert camera_reliability([BEST_EFFORT]) == BEST_EFFORT


def test_no_publisher_keeps_the_current_choice():
    assert camera_reliability([]) == BEST_EFFORT
    assert camera_reliability([], current=RELIABLE) == RELIABLE


def test_keep_last_one():
    qos = camera_qos(RELIABLE)
    assert qos.depth == 1 and qos.reliability == RELIABLE


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def nodes(ros_context):
    import rclpy

    driver = rclpy.create_node("camera_driver", context=ros_context)
    client = rclpy.create_node("camera_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(client)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                              daemon=True)
    yield driver, client, executor, stop, thread
    stop.set()
    if thread.is_alive():
        thread.join(timeout=5.0)
    executor.shutdown(timeout_sec=0)
    client.destroy_node()
    driver.destroy_node()


def _frame(value: int) -> Image:
    msg = Image(height=2, width=2, encoding="rgb8", step=6)
    msg.data = bytes([value]) * 12
    return msg


def test_subscriptions_follow_the_publishers_and_deliver_serialized_frames(nodes):
    driver, client, executor, stop, thread = nodes
    reliable = driver.create_publisher(Image, "/cams/a", QoSProfile(depth=5, reliability=RELIABLE))
    best_effort = driver.create_publisher(Image, "/cams/b", QoSProfile(depth=5, reliability=BEST_EFFORT))
    _wait(lambda: client.get_publishers_info_by_topic("/cams/a") and client.get_publishers_info_by_topic("/cams/b"))
    got = {}
    cams = CameraSubscriptions(client, Image, {"a": "/cams/a", "b": "/cams/b", "c": "/cams/c"},
                               lambda name, data: got.setdefault(name, data), period_s=3600.0)
    assert (cams.reliability("a"), cams.reliability("b"), cams.reliability("c")) == \
        ("reliable", "best_effort", "best_effort")
    late = driver.create_publisher(Image, "/cams/c", QoSProfile(depth=5, reliability=RELIABLE))
    _wait(lambda: client.get_publishers_info_by_topic("/cams/c"))
    cams.refresh()
    assert cams.reliability("c") == "reliable"
    thread.start()
    pubs = {"a": reliable, "b": best_effort, "c": late}
    _wait(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()))

    def delivered():
        for i, pub in enumerate(pubs.values()):
            pub.publish(_frame(10 + i))
        return len(got) == 3

    _wait(delivered)
    assert all(isinstance(data, bytes) and data[-12:] == bytes([10 + i]) * 12
               for i, data in enumerate(got[n] for n in ("a", "b", "c")))
    # a best-effort driver joins the reliable one: a reliable subscription would not hear it
    driver.create_publisher(Image, "/cams/a", QoSProfile(depth=5, reliability=BEST_EFFORT))
    _wait(lambda: len(client.get_publishers_info_by_topic("/cams/a")) == 2)
    stop.set()
    thread.join(timeout=5.0)
    cams.refresh()
    assert cams.reliability("a") == "best_effort"
    assert [s.topic_name for s in client.subscriptions].count("/cams/a") == 1  # replaced, not added
