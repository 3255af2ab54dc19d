"""The command line (``vlm3-ros``) and what it runs: bring-up, the demo, evaluation, the load
generator, and starting node processes with DDS on loopback (tests, demo, benchmarks)."""
