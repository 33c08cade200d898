"""The policy service on the GPU machine (ROS-free): requests in either protocol -> engine -> replies.
Imports engines/, wire/ and the base; never client/ or nodes/."""
