"""What a command prints while it works (private).

Every long phase says what it is doing from its start: a line before the
first step (which waits for compilation), then a tqdm bar, or, under
``--no-progress``, a log line every tenth of the run and at each evaluation
(as Keras's ``verbose=2`` does). All of it goes to stderr, as tqdm's bars do;
results (tables, summaries, the files written) go to stdout, so
``jaxrnn train ... > summary.txt`` keeps the results alone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any


def say(text: str) -> None:
    """One status line on stderr, at once."""
    print(text, file=sys.stderr, flush=True)


def _bar(total: int, desc: str, unit: str, initial: int = 0, leave: bool = True) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, dynamic_ncols=True,
                file=sys.stderr)


class Steps:
    """The progress of a training loop over steps ``done + 1 .. total``.

    :meth:`compiling` prints the line that stands for the first step; the bar
    is made when that step ends (its ``initial`` is that step), so that its
    rate and ETA leave compilation out. Without a bar, :meth:`update` prints a
    log line a tenth of the run after the last one, at the last step and when
    asked (``log=True``, at each evaluation): the step, the time since
    :meth:`compiling` and the fields given to it.
    """

    def __init__(self, desc: str, total: int, *, done: int = 0, bar: bool = True, unit: str = "step") -> None:
        self.desc, self.total, self.done, self.unit = desc, total, done, unit
        self.use_bar = bar
        self.log_every = max(1, (total - done) // 10)
        self.bar: Any = None
        self.logged = done  # the step of the last log line
        self.fields: dict[str, str] = {}
        self.start = time.perf_counter()
        self.compile_seconds: float | None = None

    def resume(self, done: int) -> None:
        """The loop starts after step ``done`` (a resumed run), not at 0."""
        self.done = self.logged = done
        self.log_every = max(1, (self.total - done) // 10)

    def compiling(self, what: str) -> None:
        """Says that the first step waits for ``what`` to compile."""
        self.start = time.perf_counter()
        say(f"{self.desc}: compiling {what}...")

    def update(self, step: int, fields: Mapping[str, str] | None = None, *, log: bool = False) -> None:
        """Step ``step`` (of ``total``) is done; ``fields`` (name: formatted
        value) are shown with it, and kept on the bar until replaced."""
        now = time.perf_counter()
        if self.compile_seconds is None:
            self.compile_seconds = now - self.start
            say(f"{self.desc}: compiled; {self.unit} {step} done after {self.compile_seconds:.1f}s")
        shown = log or self.due(step)
        if shown:
            self.logged = step
        if fields:
            self.fields.update(fields)
        if self.use_bar:
            if self.bar is None:
                self.bar = _bar(self.total, self.desc, self.unit, initial=step)
                self.bar.set_postfix(self.fields)
            else:
                if fields:
                    self.bar.set_postfix(self.fields, refresh=False)
                self.bar.update(step - self.bar.n)
        elif shown:
            text = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in (fields or {}).items())
            say(f"{self.desc}: {self.unit} {step}/{self.total}  {now - self.start:.0f}s"
                + (f"  {text}" if text else ""))

    def due(self, step: int) -> bool:
        """Whether step ``step`` gets a log line without being asked: the last
        step, and a tenth of the run or more after the last line (an update
        may cover a block of steps)."""
        return step >= self.total or step - self.logged >= self.log_every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Parts:
    """Progress over a known number of named parts, one after the other
    (diagnostics: each model's gradient norms, then its Jacobian spectrum): a
    bar whose postfix names the part under way, or one line per part."""

    def __init__(self, desc: str, total: int, *, bar: bool = True, leave: bool = True) -> None:
        self.desc = desc
        self.started = 0
        self.bar = _bar(total, desc, "part", leave=leave) if bar else None

    def start(self, name: str) -> None:
        """Part ``name`` begins; the one before it, if any, has ended."""
        if self.bar is None:
            say(f"{self.desc}: {name}...")
            return
        if self.started:  # one redraw: the new name with the count of parts done
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(1)
        else:
            self.bar.set_postfix_str(name)
        self.started += 1

    def close(self) -> None:
        """The last part has ended."""
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
                self.started = 0
            self.bar.close()

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
