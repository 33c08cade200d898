"""The thin ROS 2 nodes (groot_server, groot_client, groot_sim_robot) with their parameter, diagnostics
and launch-argument glue. Import server/, client/, engines/, wire/ and the base; never tools/."""
