"""rosbag2 bags: exact CDR bytes, the MCAP storage with metadata.yaml, reading any bag, recovery."""
