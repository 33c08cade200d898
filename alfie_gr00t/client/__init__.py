"""The robot side (ROS-free): latest inputs, the inference thread, the chunk scheduler, the latency policy,
the measured state and the one motion gate. Imports wire/ and the base; never engines/, server/ or nodes/."""
