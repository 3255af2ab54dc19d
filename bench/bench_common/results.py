"""One way to write a benchmark's results: a JSON document and a Markdown page side by side, both
with the machine record (machine.machine_record) and the exact command line that produced them."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common.machine import describe, machine_record


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """``python bench/<script> <arguments>`` as typed (``argv``: the arguments, default this
    process's), quoted so it can be pasted into a shell."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", f"bench/{Path(script).name}", *args])


class ResultsWriter:
    """Writes ``<out>/<name>.json`` and ``<out>/<name>.md`` for one benchmark run. The machine is
    recorded once, when the writer is made (the start of the run); ``write`` may be called again
    as rows arrive, so a run cut short keeps what it measured."""

    def __init__(self, out: Path, name: str, command: str, notes: Sequence[str] = ()) -> None:
        self.out, self.name, self.command = Path(out), name, command
        self.notes = [n for n in notes if n]
        self.machine = machine_record()

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.out / f"{self.name}.json", self.out / f"{self.name}.md"

    def header(self, title: str) -> list[str]:
        """The Markdown page's first lines: the title, the machine, the command and any notes."""
        lines = [f"# {title}", "", f"{describe(self.machine)} Command: `{self.command}`"]
        for n in self.notes:
            lines += ["", f"Note: {n}"]
        return [*lines, ""]

    def write(self, title: str, doc: dict[str, Any], body: Sequence[str], meta_key: str | None = "meta") -> list[str]:
        """Write ``doc`` as JSON, with ``machine``, ``command`` (and ``notes``) added to its
        ``meta_key`` section (None: its top level), and the Markdown page: the header, then
        ``body``. Returns the page's lines."""
        doc = dict(doc)
        section = doc if meta_key is None else dict(doc.get(meta_key) or {})
        section.update(machine=self.machine, command=self.command, **({"notes": self.notes} if self.notes else {}))
        if meta_key is not None:
            doc = {meta_key: section, **{k: v for k, v in doc.items() if k != meta_key}}
        self.out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = self.paths
        json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        md = [*self.header(title), *body]
        md_path.write_text("\n".join(md) + "\n")
        return md
