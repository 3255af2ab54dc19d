"""Evaluation on recorded data with the paper's metrics: datasets of queries with ground truth
(dataset.py), who answers them (runner.py), the metrics (metrics.py), one scorer per task
(scoring.py), the run (run.py) and the report (report.py)."""
