"""The adding-problem runs of ``adding.sh``: one table from their ``metrics.json``.

``python -m benchmarks.parallel.adding DIR`` reads every ``DIR/*/metrics.json``
(and ``config.json``, for runs still going or killed: their last evaluation
in ``metrics.jsonl``), writes ``DIR/adding.json`` and ``DIR/adding.md``, and
prints the table. ``python -m benchmarks.parallel --adding DIR`` puts the
same table into its results (and, with ``--docs``, into docs/parallel.md).
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

#: cells in the order of the table: the classic ones first
ORDER = ("lstm", "gru", "mingru", "minlstm", "lru", "rglru", "tanh")


def _last_eval(jsonl: pathlib.Path) -> tuple[int, float | None, int]:
    """``(steps done, last test loss, steps at it)`` of a run's metrics.jsonl."""
    steps, loss, at = 0, None, 0
    for line in jsonl.read_text().splitlines() if jsonl.exists() else ():
        try:
            row = json.loads(line)
        except ValueError:
            break
        steps = row["step"]
        if "eval_loss" in row:
            loss, at = row["eval_loss"], row["step"]
    return steps, loss, at


def collect(folder: pathlib.Path) -> list[dict[str, Any]]:
    """One record per run folder under ``folder`` (finished or not)."""
    out = []
    for config_path in sorted(folder.glob("*/config.json")):
        run = config_path.parent
        config = json.loads(config_path.read_text())
        record = {**config, "run": run.name, "finished": False}
        metrics = run / "metrics.json"
        if metrics.exists():
            summary = json.loads(metrics.read_text())["summary"]
            record.update(finished=True, final_test_loss=summary["final_test_loss"],
                          seconds=summary["seconds_this_session"], steps_done=config["steps"])
        else:
            steps, loss, _ = _last_eval(run / "metrics.jsonl")
            record.update(final_test_loss=loss, seconds=None, steps_done=steps)
        out.append(record)
    out.sort(key=lambda r: (r["length"], ORDER.index(r["cell"]) if r["cell"] in ORDER else len(ORDER), r["cell"]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m benchmarks.parallel.adding DIR (the folder of benchmarks/parallel/adding.sh)",
              file=sys.stderr)
        return 2
    from .report import adding_table

    folder = pathlib.Path(argv[0])
    records = collect(folder)
    if not records:
        print(f"no runs (*/config.json) under {folder}", file=sys.stderr)
        return 1
    md = "\n".join(adding_table(records))
    (folder / "adding.json").write_text(json.dumps(records, indent=1))
    (folder / "adding.md").write_text(md + "\n")
    print(md)
    print(f"wrote {folder}/adding.json, adding.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
