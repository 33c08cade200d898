"""alfie_gr00t: a GR00T N1.6 policy server and a safe 100 Hz robot client over ZeroMQ.

Layers, lowest first; a module imports only from its own layer or lower ones (test_layers.py):

    layout, stats, settings   the base: the 21-D layout, rolling stats, config helpers
    wire/                     both machines: decoded observations, both wire protocols, ZeroMQ, image codecs
    bag/                      both machines: rosbag2 bags (exact CDR, MCAP storage + metadata.yaml, reading, recovery)
    engines/                  the GPU machine: the engine interface and every backend
    dataset/                  the training machine: episodes resampled from sessions or any bag, LeRobot v2.1 writer
    server/                   the GPU machine: the policy service and its parameters
    client/                   the robot: inputs, inference thread, scheduler, latency policy, the motion gate
    nodes/                    the thin ROS 2 nodes over server/ and client/ (parameters, diagnostics, launch)
    tools/                    the developer's desk and set-up: bringup, benchmarks, engine build/check, Triton

server/ and client/ never import each other; client/ never imports engines/.
"""
