"""The ``transformers`` backend: VLM3 checkpoints through transformers, with the shared-image-prefix
engine (:mod:`.prefix_engine`) and the naive reference (one ``generate`` per question).

Modules: :mod:`.engine_settings` (the backend's configuration, importable without torch),
:mod:`.model_loading` (processor, model and the registry that shares models between tasks),
:mod:`.transformers_backend` (the backend object), :mod:`.prefix_engine` (image prefix, question
batches), :mod:`.frame_prefixes` (the frame prefix cache), :mod:`.greedy_loop` (greedy decoding on
a prefilled prefix), :mod:`.stopping_rules` (when a row's answer is complete) and
:mod:`.compiled_step` (the answer step compiled with torch.compile, warmed up at configure).
"""
