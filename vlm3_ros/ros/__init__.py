"""The ROS 2 shell: the perception node (lifecycle, subscriptions, parameters, message conversion),
its service handlers, the Python client, the bag player, a topic recorder and the evaluation's
through-ROS runner. The only place (with tools/) that imports rclpy and message packages."""
