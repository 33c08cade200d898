"""Camera subscriptions whose reliability follows the camera driver's publisher.

A raw 640x480 rgb8 frame is about 900 KB: DDS sends it in many fragments, and a best-effort reader
drops the whole frame when one fragment is lost. On a busy computer that was about half the frames,
in bursts of up to a second (docs/performance.md), so the newest frame the inference thread found was
often hundreds of milliseconds old. A reliable reader has lost fragments resent, but a reliable
subscription never matches a best-effort publisher. So each camera topic is subscribed reliable when
every publisher on it offers reliable, and best effort otherwise; the choice is checked again every
`period_s`, and a topic with no publisher keeps the subscription it has (best effort at start).

Keep-last 1 either way: the client uses only the newest frame of each camera, and a deeper queue
only holds older ones for the callback to store and throw away.
"""

from __future__ import annotations

from typing import Callable, Iterable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def camera_reliability(offered: Iterable, current: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT):
    """The reliability to subscribe with, given the reliability each publisher offers: RELIABLE when there
    is at least one publisher and every one offers it, BEST_EFFORT when any does not, `current` when
    there is no publisher at all."""
    offered = list(offered)
    if not offered:
        return current
    if all(r == ReliabilityPolicy.RELIABLE for r in offered):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def camera_qos(reliability: ReliabilityPolicy) -> QoSProfile:
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


class CameraSubscriptions:
    """One raw (serialized) subscription per camera on `node`; `on_frame(name, data)` gets the bytes.
    Call `refresh()` to re-check now (the node's timer does it every `period_s`)."""

    def __init__(self, node, image_type, topics: dict, on_frame: Callable[[str, bytes], None],
                 callback_group=None, period_s: float = 1.0):
        self._node, self._type, self._group = node, image_type, callback_group
        self._topics = {name: node.resolve_topic_name(topic) for name, topic in topics.items()}
        self._on_frame = on_frame
        self._subs: dict = {}  # camera -> (subscription, reliability)
        for name in self._topics:
            self._subscribe(name, camera_reliability(self._offered(name)))
        self._timer = node.create_timer(period_s, self.refresh, callback_group=callback_group)

    def reliability(self, name: str) -> str:
        """'reliable' or 'best_effort': what `name`'s subscription uses now."""
        return "reliable" if self._subs[name][1] == ReliabilityPolicy.RELIABLE else "best_effort"

    def refresh(self) -> None:
        for name in self._topics:
            current = self._subs[name][1]
            wanted = camera_reliability(self._offered(name), current)
            if wanted != current:
                self._node.destroy_subscription(self._subs.pop(name)[0])
                self._subscribe(name, wanted)

    def _offered(self, name: str) -> list:
        return [info.qos_profile.reliability for info in self._node.get_publishers_info_by_topic(self._topics[name])]

    def _subscribe(self, name: str, reliability: ReliabilityPolicy) -> None:
        sub = self._node.create_subscription(self._type, self._topics[name],
                                             lambda data, n=name: self._on_frame(n, data), camera_qos(reliability),
                                             callback_group=self._group, raw=True)
        self._subs[name] = (sub, reliability)
