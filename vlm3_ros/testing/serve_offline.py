"""Run ``transformers serve`` (a real OpenAI-compatible server) on a local checkpoint, offline.

The only change to the stock server: its processor loader is replaced by vlm3_ros's
``load_processor``, which falls back to the image-only Qwen3-VL processor where torchvision is
missing (AutoProcessor refuses a Qwen3-VL folder then). Everything else is transformers' server.

    python -m vlm3_ros.testing.serve_offline MODEL_DIR --host 127.0.0.1 --port 8011 --device cpu
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    hf_home = os.environ.setdefault("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "vlm3_ros_hf"))
    os.makedirs(os.path.join(hf_home, "hub"), exist_ok=True)  # /v1/models errors without it
    from transformers.cli.serving import model_manager
    from transformers.cli.transformers import app

    from vlm3_ros.inference.transformers_engine.model_loading import load_processor

    def _load_processor(self: Any, model_id_and_revision: str, gguf_file: str | None = None) -> Any:
        return load_processor(model_id_and_revision.split("@", 1)[0])

    model_manager.ModelManager._load_processor = _load_processor
    sys.argv = ["transformers", "serve", *argv]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
