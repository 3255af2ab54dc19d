"""What the benchmark scripts in bench/ share: the record of the machine a result was measured on
(``machine``), the backends built from the node's own parameters (``backends``), the results
files (``results``) and measurements repeated in separate processes (``repeats``).

The scripts run as ``python bench/<script>.py``, which puts bench/ on the import path, so
``import bench_common`` works the normal way; vlm3_ros comes from the environment
(``source scripts/env.sh``: the colcon install, or the editable install of the 3.10 core;
bench/gpu_check.sh puts the checkout on PYTHONPATH)."""
