"""Reports: ratios between implementations, the Markdown tables, the plots,
the docs page, and what machine and versions a run had."""

from __future__ import annotations

import pathlib
import platform
import shutil
from typing import Any

import jax
import numpy as np

import jaxrnn as jr

from .grid import CELLS, IMPLS, Case, torch_or_none

#: the docs page whose marked block ``--docs`` rewrites, and its plots' folder
DOCS_PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"

#: the losses of the fwd+bwd pass, as the report states them (runners.loss_of)
LOSS_TEXT = {
    "readout": "mean((ys @ w_out - target)²), w_out (H, 1) and target (B, T, 1) fixed random: "
               "a linear readout and squared error, nonlinear in the outputs",
    "linear": "sum(ys * w), w (B, T, H) fixed random: linear in the outputs",
}
#: how the times are taken (timing.time_interleaved), as the report states it
TIMING_TEXT = ("per case, every implementation compiled and checked first, then --repeats rounds, each "
               "running every implementation once (fwd, then fwd+bwd, each call blocked until ready) in an "
               "order that rotates between rounds; best (min) over rounds, median beside it")


def row_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """A row's case: (cell, T, B, I, H)."""
    return r["cell"], r["T"], r["B"], r.get("I", r["H"]), r["H"]


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speedups over flax/torch/scan/cudnn (fwd+bwd best-of times) and memory
    relative to scan (fwd+bwd compiled temp bytes), per (cell, T, B, I, H)."""
    by_key = {(*row_key(r), r["impl"]): r for r in rows}
    for r in rows:
        key = row_key(r)
        mine = r["fwdbwd"] or {}
        for peer in ("flax", "torch", "scan", "cudnn"):
            other = (by_key.get((*key, peer)) or {}).get("fwdbwd") or {}
            ok = mine.get("seconds") and other.get("seconds")
            r[f"speedup_vs_{peer}"] = other["seconds"] / mine["seconds"] if ok else None
        scan = (by_key.get((*key, "scan")) or {}).get("fwdbwd") or {}
        ok = mine.get("temp_bytes") is not None and scan.get("temp_bytes")
        r["memory_vs_scan"] = mine["temp_bytes"] / scan["temp_bytes"] if ok else None
        scan_grad = (by_key.get((*key, "scan")) or {}).get("grad_temp_bytes")
        ok = r.get("grad_temp_bytes") is not None and scan_grad
        r["grad_memory_vs_scan"] = r["grad_temp_bytes"] / scan_grad if ok else None


# --------------------------------------------------------------------------
# reports


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _time(stats: dict[str, Any]) -> str:
    """µs per step: the best, and the median in parentheses where there is one."""
    best, median = stats.get("us_per_step"), stats.get("median_us_per_step")
    return _fmt(best, ".1f") + ("" if median is None else f" ({median:.1f})")


def _mb(b: Any) -> str:
    return "—" if b is None else f"{b / 1e6:.1f}"


def _grad_mb(r: dict[str, Any]) -> str:
    g = r.get("grad_temp_bytes")
    return "" if g is None else f" ({g / 1e6:.1f})"


def memory_ratio(r: dict[str, Any]) -> float:
    """Memory relative to scan: of ``jax.grad`` alone where measured (the
    outputs excluded, as in tests/test_kernels.py), else of fwd+bwd."""
    g = r.get("grad_memory_vs_scan")
    return g if g is not None else r["memory_vs_scan"]


def _ratio_text(r: dict[str, Any]) -> str:
    text = _fmt(r.get("memory_vs_scan"), ".3f")
    g = r.get("grad_memory_vs_scan")
    return text if g is None else f"{text} ({g:.3f})"


#: The CPU speed targets (fwd+bwd, T=1000) of the ``fused-default`` row:
#: (cell, B, I or None for any, H, least speedup over Flax); at least 1x PyTorch at each.
CPU_SPEED_TARGETS = (
    ("lstm", 8, None, 128, 2.0), ("lstm", 32, None, 128, 2.0), ("lstm", 64, 256, 256, 1.3),
    ("gru", 8, None, 128, 2.0), ("gru", 32, None, 128, 2.0),
)


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The lead's targets (fp32, fwd+bwd, CPU): (target, measured, verdict).
    Speedups are of best-of times."""
    # the default grid's cases (I = H), by (cell, T, B, H, impl)
    by = {(r["cell"], r["T"], r["B"], r["H"], r["impl"]): r for r in rows if r.get("I", r["H"]) == r["H"]}
    out = []

    def verdict(ok: bool | None) -> str:
        return "—" if ok is None else ("met" if ok else "NOT met")

    for cell, B, I, H, need in CPU_SPEED_TARGETS:
        for r in rows:
            if (r["impl"], r["cell"], r["T"], r["B"], r["H"], r["status"]) != ("fused-default", cell, 1000, B, H, "ok"):
                continue
            if I is not None and r["I"] != I:
                continue
            where = f"{cell} T=1000 (B={B}, I={r['I']}, H={H}): fused-default"
            s, t = r["speedup_vs_flax"], r["speedup_vs_torch"]
            out.append((f"{where} ≥ {need}× Flax", _fmt(s, ".2f", "×"), verdict(None if s is None else s >= need)))
            out.append((f"{where} ≥ 1× PyTorch", _fmt(t, ".2f", "×"), verdict(None if t is None else t >= 1.0)))
    for cell in ("lstm", "gru"):
        for impl in ("fused-states", "fused-gates"):
            r = by.get((cell, 1000, 64, 512, impl))
            if r is not None and r["fwdbwd"] and r["fwdbwd"].get("peak_share"):
                s = r["fwdbwd"]["peak_share"]
                out.append((f"{cell} T=1000 (64,512): {impl} ≥ 70% of GEMM peak", f"{s:.0%}", verdict(s >= 0.7)))
    for r in rows:
        if r["impl"] == "fused-states" and r["memory_vs_scan"] is not None and r["T"] >= 1000:
            m = memory_ratio(r)
            out.append((f"{r['cell']} T={r['T']} ({r['B']},{r['H']}): states memory ≤ 1/5 of scan", _ratio_text(r), verdict(m <= 0.2)))
    for r in rows:
        if r["impl"] == "fused-ckpt" and r["T"] == 10000 and r["memory_vs_scan"] is not None:
            m = memory_ratio(r)
            out.append((f"{r['cell']} T=10000 ({r['B']},{r['H']}): ckpt memory ≤ 1/20 of scan", _ratio_text(r), verdict(m <= 0.05)))
            st = (by.get((r["cell"], 10000, r["B"], r["H"], "fused-states")) or {}).get("fwdbwd") or {}
            if r["fwdbwd"] and r["fwdbwd"].get("seconds") and st.get("seconds"):
                q = r["fwdbwd"]["seconds"] / st["seconds"]
                out.append((f"{r['cell']} T=10000 ({r['B']},{r['H']}): ckpt time ≤ 1.4× states", f"{q:.2f}×", verdict(q <= 1.4)))
    r = by.get(("lstm", 100000, 8, 128, "fused-ckpt"))
    if r is not None:
        ok = r["status"] == "ok"
        out.append(("lstm T=100000 (8,128): fused-ckpt fwd+bwd runs", f"{r['fwdbwd']['seconds']:.1f} s" if ok else r["status"], verdict(ok)))
    return out


#: The GPU targets of the pallas rows (fwd+bwd, H100/H200): (peer, least speedup).
GPU_TARGETS = (("scan", 5.0), ("flax", 5.0), ("cudnn", 2.0), ("torch", 1 / 1.5))


def gpu_targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The pallas rows' GPU targets, read off every timed pallas row:
    fwd+bwd at least 5x impl="scan" and Flax, 2x jax.experimental.rnn's LSTM,
    and within 1.5x of PyTorch's cuDNN (same dtype)."""
    out = []
    for r in rows:
        if not r["impl"].startswith("pallas-") or r["status"] != "ok" or not r["fwdbwd"]:
            continue
        for peer, need in GPU_TARGETS:
            s = r.get(f"speedup_vs_{peer}")
            if s is None:
                continue
            what = f"≥ {need:g}× {peer}" if need >= 1 else f"within {1 / need:g}× of {peer}"
            out.append((f"{r['cell']} T={r['T']} ({r['B']},{r['H']}): {r['impl']} {what}", f"{s:.2f}×",
                        "met" if s >= need else "NOT met"))
    return out


def markdown(result: dict[str, Any]) -> str:
    meta, rows = result["meta"], result["rows"]
    peak = meta["gemm_peak"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
        (f"dtype: {meta['dtype']}; GEMM peak: {peak['gflops']:.1f} GFLOP/s "
         f"({peak['n']}×{peak['n']} {peak['dtype']} matmul); {meta['date']}  "),
    ]
    if "loss" in meta:  # runs before the readout loss had a linear one only
        lines.append(f"Loss ({meta['loss']}): `{LOSS_TEXT.get(meta['loss'], meta.get('loss_text', ''))}`  ")
    if "timing" in meta:
        lines.append(f"Timing: {meta['timing']}")
    lines.append("")
    for warning in meta.get("warnings", []):  # a busy machine (cli.load_warning)
        lines += [f"**Warning:** {warning}.", ""]
    goal = targets(rows) if meta.get("backend", "cpu") == "cpu" else gpu_targets(rows)
    if goal:
        lines += ["### Targets", "", "| target | measured | |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in goal]
        lines.append("")
    lines += [
        "### Results",
        "",
        ("Times are µs per step, the best of the interleaved rounds with the median over them in "
         "parentheses; tok/s, GFLOP/s and % peak are for fwd+bwd, at the best time; "
         "memory is the compiled temporary memory of the fwd+bwd function; "
         "×Flax, ×torch, ×scan (and ×cudnn where it ran) are fwd+bwd speedups of best times "
         "(above 1: faster than that peer); "
         "mem/scan is memory relative to `impl=\"scan\"`. In parentheses: the same for `jax.grad` "
         "alone (no loss value, so the outputs need not be kept; the measure of the engine's tests), "
         "which the memory targets use."),
        "",
    ]
    cudnn = any(r.get("speedup_vs_cudnn") for r in rows)
    header = "| cell | T | B | I | H | impl | fwd µs/step | fwd+bwd µs/step | tok/s | GFLOP/s | % peak | temp MB | mem/scan | ×Flax | ×torch | ×scan |"
    if cudnn:
        header += " ×cudnn |"
    device_peak = any(r.get("device_peak_bytes") for r in rows)
    if device_peak:
        header += " device peak MB |"
    shown = [r for r in rows if r["status"] in ("ok", "memory-only")]
    for cell in CELLS:
        cell_rows = [r for r in shown if r["cell"] == cell]
        if not cell_rows:
            continue
        lines += [f"#### {cell}", "", header, "|" + "---|" * (header.count("|") - 1)]
        for r in cell_rows:
            f, fb = r["fwd"] or {}, r["fwdbwd"] or {}
            impl = r["impl"] + (f" (K={r['residuals']})" if r["residuals"] else "")
            if r["status"] == "memory-only":
                impl += " †"
            lines.append(
                f"| {cell} | {r['T']} | {r['B']} | {r.get('I', r['H'])} | {r['H']} | {impl} | "
                f"{_time(f)} | {_time(fb)} | "
                f"{_fmt(fb.get('tokens_per_s'), '.3g')} | {_fmt(fb.get('gflops'), '.1f')} | "
                f"{_fmt(fb.get('peak_share') and 100 * fb['peak_share'], '.0f', '%')} | "
                f"{_mb(fb.get('temp_bytes'))}{_grad_mb(r)} | "
                f"{_ratio_text(r)} | {_fmt(r['speedup_vs_flax'], '.2f', '×')} | "
                f"{_fmt(r['speedup_vs_torch'], '.2f', '×')} | {_fmt(r['speedup_vs_scan'], '.2f', '×')} |"
                + (f" {_fmt(r.get('speedup_vs_cudnn'), '.2f', '×')} |" if cudnn else "")
                + (f" {_mb(r.get('device_peak_bytes'))} |" if device_peak else "")
            )
        lines.append("")
    if any(r["status"] == "memory-only" for r in rows):
        lines.append("† compiled memory only (not run; see *Not timed*).")
    if device_peak:
        lines.append("Device peak: JAX rows show the process's peak bytes in use so far (JAX cannot reset it); "
                     "PyTorch rows the peak of their own calls (`torch.cuda.max_memory_allocated`).")
    lines.append("")
    failed = [r for r in rows if r["status"] in ("check failed", "error")]
    if failed:
        lines += ["### Failures", ""]
        lines += [f"- {r['impl']} at {_case(r).label()}: {r['status']}: {r['reason']}" for r in failed]
        lines.append("")
    skipped = skip_summary(rows)
    if skipped:
        lines += ["### Not timed", ""]
        # "B*H > 8*128" is literal: a bare * would start Markdown emphasis
        escaped = {reason.replace("*", r"\*"): items for reason, items in skipped.items()}
        lines += [f"- {reason}: {', '.join(items)}" for reason, items in escaped.items()]
        lines.append("")
    return "\n".join(lines)


def _case(r: dict[str, Any]) -> Case:
    return Case(r["cell"], r["T"], r["B"], r["H"], r.get("I"))


def _size(r: dict[str, Any]) -> str:
    """``(B,H)``, or ``(B,I,H)`` where I differs from H."""
    I = r.get("I", r["H"])
    return f"({r['B']},{r['H']})" if I == r["H"] else f"({r['B']},{I},{r['H']})"


def skip_summary(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] in ("skipped", "memory-only"):
            item = f"{r['impl']} {r['cell']} T={r['T']} {_size(r)}"
            out.setdefault(r["reason"], []).append(item)
    return out


def plots(result: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    """time_per_step.png, memory.png and speedup_vs_flax.png (fwd+bwd).

    The first two are small multiples, one panel per cell and size, so that
    each panel holds one line (or bar) per implementation and one legend,
    shared, names them all; they are drawn about 1000 px wide with large
    type, to be read at the width of the docs page (about 750 px).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = result["rows"]
    cells = [c for c in CELLS if any(r["cell"] == c and r["status"] in ("ok", "memory-only") for r in rows)]
    # one colour per implementation, the same in every plot (tab10, then black and a light blue)
    palette = [f"C{k}" for k in range(10)] + ["black", "#aec7e8"]
    colors = dict(zip(IMPLS, palette))
    markers = dict(zip(IMPLS, "os^PXdvDx+*<>"))
    loss = result["meta"].get("loss")
    # runs before the interleaved rounds reported medians: their meta says so
    statistic = result["meta"].get("statistic", "best of rounds")
    subtitle = (f"{result['meta']['dtype']}, fwd+bwd" + (f" ({loss} loss)" if loss else "")
                + f", {statistic}; {result['meta']['device']}")
    written = []

    def size_of(r: dict[str, Any]) -> tuple[int, int, int]:
        return r["B"], r.get("I", r["H"]), r["H"]

    def size_label(size: tuple[int, int, int]) -> str:
        b, i, h = size
        return f"B={b}, H={h}" + ("" if i == h else f", I={i}")

    def panels(metric: str, statuses: tuple[str, ...]) -> tuple[list, list]:
        """The (cell, size) panels that have data, and the implementations drawn."""
        have = [r for r in rows if r["status"] in statuses and r["fwdbwd"] and r["fwdbwd"].get(metric) is not None]
        sizes = sorted({size_of(r) for r in have})
        keys = [(c, z) for z in sizes for c in cells if any(r["cell"] == c and size_of(r) == z for r in have)]
        impls = [i for i in IMPLS if any(r["impl"] == i for r in have)]
        return keys, impls

    def small_multiples(
        metric: str, what: str, ylabel: str, name: str, statuses: tuple[str, ...], scale: float, bars: bool
    ) -> None:
        keys, impls = panels(metric, statuses)
        if not keys:
            return
        ncols = min(2, len(keys))
        nrows = -(-len(keys) // ncols)
        with plt.rc_context({"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 12}):
            fig, axes = plt.subplots(nrows, ncols, figsize=(10, 0.6 + 3.0 * nrows), squeeze=False,
                                     layout="constrained")
            for ax, (cell, size) in zip(axes.flat, keys):
                pick = {(r["impl"], r["T"]): r["fwdbwd"][metric] * scale for r in rows
                        if r["cell"] == cell and size_of(r) == size and r["status"] in statuses
                        and r["fwdbwd"] and r["fwdbwd"].get(metric) is not None}
                ts = sorted({t for _, t in pick})
                if bars:  # one group of bars per T: time per step hardly changes with T
                    shown = [i for i in impls if any((i, t) in pick for t in ts)]
                    width = 0.8 / max(1, len(shown))
                    for k, impl in enumerate(shown):
                        xs = [g + (k - (len(shown) - 1) / 2) * width for g, t in enumerate(ts) if (impl, t) in pick]
                        ys = [pick[impl, t] for t in ts if (impl, t) in pick]
                        ax.bar(xs, ys, width * 0.92, color=colors[impl], label=impl)
                    ax.set_xticks(range(len(ts)), [f"T={t:,}" for t in ts])
                    ax.set_xlim(-0.5, len(ts) - 0.5)
                    ax.grid(True, axis="y", alpha=0.3)
                else:  # lines against T, log-log: memory grows with T
                    for impl in impls:
                        pts = sorted((t, v) for (i, t), v in pick.items() if i == impl)
                        if pts:
                            t, y = zip(*pts)
                            ax.plot(t, y, "-", marker=markers[impl], color=colors[impl], label=impl, ms=6)
                    ax.set(xscale="log", yscale="log")
                    ax.set_xlabel("T (steps)")
                    ax.grid(True, which="both", alpha=0.3)
                ax.set_title(f"{cell}, {size_label(size)}")
                ax.set_ylabel(ylabel)
            for ax in axes.flat[len(keys):]:
                ax.set_visible(False)
            handles = [Patch(color=colors[i]) if bars else Line2D([], [], color=colors[i], marker=markers[i])
                       for i in impls]
            fig.legend(handles, impls, loc="outside lower center", ncols=min(len(impls), 5), frameon=False)
            fig.suptitle(f"{what}; {subtitle}")
            path = out / name
            fig.savefig(path, dpi=100)
            plt.close(fig)
        written.append(path)

    small_multiples("us_per_step", "time per step", "µs per step", "time_per_step.png", ("ok",), 1.0, bars=True)
    small_multiples("temp_bytes", "compiled temporary memory", "temporary MB", "memory.png", ("ok", "memory-only"),
                    1e-6, bars=False)

    groups = sorted({row_key(r) for r in rows if r["speedup_vs_flax"] is not None},
                    key=lambda g: (list(CELLS).index(g[0]), *g[1:]))
    impls = [i for i in IMPLS if i != "flax" and any(r["impl"] == i and r["speedup_vs_flax"] for r in rows)]
    if groups and impls:
        with plt.rc_context({"font.size": 12, "legend.fontsize": 12}):
            fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
            width = 0.8 / len(impls)
            by = {(*row_key(r), r["impl"]): r["speedup_vs_flax"] for r in rows}
            for k, impl in enumerate(impls):
                xs = [g + k * width for g in range(len(groups))]
                ax.bar(xs, [by.get((*grp, impl)) or 0 for grp in groups], width, color=colors[impl], label=impl)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))])
            ax.set_xticklabels([f"{c}\nT={t}\n{b}×{h}" + ("" if i == h else f"\nI={i}")
                                for c, t, b, i, h in groups], fontsize=10)
            ax.set(ylabel="× Flax nn.RNN (above 1: faster)")
            ax.grid(True, axis="y", alpha=0.3)
            fig.suptitle(f"speedup over Flax nn.RNN; {subtitle}")
            fig.legend(loc="outside lower center", ncols=min(len(impls), 6), frameon=False)
            path = out / "speedup_vs_flax.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
        written.append(path)
    return written


BEGIN, END = "<!-- bptt:begin (written by benchmarks/bptt.py --docs) -->", "<!-- bptt:end -->"


def fold(md: str) -> str:
    """``markdown``'s report with its long parts folded away for the docs page.

    The *Targets* table, each cell's table of every row and the *Not timed*
    list become collapsed ``??? note`` blocks (``pymdownx.details``), titled
    with what they hold ("Targets: 41 of 57 met"); the run's header, the
    notes under the tables and the plots stay in view. Anything else passes
    through unchanged, so folding a folded report changes nothing.
    """
    out: list[str] = []
    lines = md.split("\n")
    k = 0
    while k < len(lines):
        line = lines[k]
        kind = ("targets" if line == "### Targets" else "skipped" if line == "### Not timed"
                else "cell" if line.startswith("#### ") else None)
        if kind is None:
            out.append(line)
            k += 1
            continue
        body: list[str] = []  # the table or list under the heading
        prose: list[str] = []  # text above it, which stays in view
        k += 1
        while k < len(lines) and not lines[k].startswith("#"):
            text = lines[k]
            if text.startswith(("|", "- ")):
                body.append(text)
            elif text.strip():
                if body:
                    break  # text after the table (a footnote) stays in view
                prose += [text, ""]
            k += 1
        out += prose
        items = [b for b in body if b.startswith("|")][2:]  # table rows, less the header and its rule
        if kind == "targets":
            met = sum(b.rstrip().endswith("| met |") for b in items)
            title = f"Targets: {met} of {len(items)} met"
        elif kind == "cell":
            title = f"Every row: {line[5:]} ({len(items)} rows)"
        else:
            count = sum(len(b.rsplit(": ", 1)[-1].split(", ")) for b in body if b.startswith("- "))
            title = f"Not timed: {count} rows, and why"
        out += [f'??? note "{title}"', ""] + [f"    {b}" for b in body] + [""]
    return "\n".join(out)


def write_docs(md: str, pngs: list[pathlib.Path], quick: bool, page: pathlib.Path = DOCS_PAGE) -> None:
    """Puts the tables and plots of this run into the docs: the plots into
    ``docs/benchmarks/``, the tables between the markers of ``docs/benchmarks.md``
    (``page``; the plots go into the folder ``benchmarks/`` beside it)."""
    docs_dir = page.parent / "benchmarks"
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"--docs: {page} lacks the markers {BEGIN!r} and {END!r}")
    docs_dir.mkdir(parents=True, exist_ok=True)
    for path in pngs:
        shutil.copy(path, docs_dir / path.name)
    rel = docs_dir.relative_to(page.parent).as_posix()
    block = [BEGIN, ""]
    if quick:
        block += ["!!! note \"An example: a `--quick` run\"",
                  ("    A small grid that shows the output's form; it is not the full benchmark "
                   "(see [Running it](#running-it)). Its timings are only as good as the machine was "
                   "quiet: see the load average in its first lines."), ""]
    block += [fold(md), ""]
    # Each plot links to itself: a click shows it at full size.
    block += [f"[![{p.stem.replace('_', ' ')}]({rel}/{p.name})]({rel}/{p.name})\n" for p in pngs]
    block += ["", END]
    head, rest = text.split(BEGIN, 1)
    page.write_text(head + "\n".join(block) + rest.split(END, 1)[1])
    print(f"wrote the tables into {page} and the plots into {docs_dir}")



def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    import flax
    import jaxlib

    out = {"jaxrnn": jr.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
           "numpy": np.__version__, "python": platform.python_version()}
    torch = torch_or_none()
    if torch is not None:
        out["torch"] = torch.__version__
    return out
