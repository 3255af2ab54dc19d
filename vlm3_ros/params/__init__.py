"""The node's parameters: the table (table.py), validation (config.py), parameter files and
``name:=value`` overrides (files.py), launch arguments (launch.py), and the one mapping from
parameters to the objects they configure (mapping.py), shared by the node, eval and benchmarks."""
