"""The four VLM3 tasks, one module each (depth, pose, corr, object): the contract's preprocessing,
the questions, the parsing of the answers and the mapping back to original pixels and metric 3D.
``registry.TASKS`` is the one list of tasks; parameters, launch arguments, services and defaults
are generated from it. ``pipeline.Pipeline`` runs them against per-task backends."""
