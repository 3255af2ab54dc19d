"""The node's parameters: the table (table.py), validation (config.py), parameter files and
``name:=value`` overrides (files.py), launch arguments (launch_args.py), and the one mapping from
parameters to the node's settings record (mapping.py, node_settings.py), shared by the node, eval and
benchmarks."""
