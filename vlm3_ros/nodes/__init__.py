"""The thin ROS 2 shell: nodes convert messages, hold parameters and wire callbacks."""
