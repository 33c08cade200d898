"""LeRobot v2.1 datasets for Isaac-GR00T fine-tuning: episodes from our sessions or from any bag of the robot
(through a topic map), resampled at the training rate, written as GR00T LeRobot."""
