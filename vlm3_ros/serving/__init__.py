"""The serving core, free of ROS: camera pairing and the frame cache, frame selection, task
gating, the bounded inference worker with deadlines, the status roll-up of service replies, the
sparse-depth and visual-odometry producers, and the health summary. ``core.PerceptionCore`` is the
one handle that composes the parts (camera_intake, model_host, jobs, service_requests, producers,
health); ``vlm3_ros.ros`` only converts messages to and from them."""
