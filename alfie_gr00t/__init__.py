"""alfie_gr00t: serve GR00T N1.6 action chunks over ZeroMQ and execute them safely on ROS 2."""

__version__ = "0.1.0"
