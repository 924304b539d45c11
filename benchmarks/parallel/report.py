"""Reports: the crossovers, the Markdown tables, the plots and the docs page."""

from __future__ import annotations

import itertools
import math
import os
import pathlib
import shutil
import textwrap
from typing import Any

from jaxrnn.parallel import default_tol

from .grid import LINEAR_CELLS, METHODS, NEWTON_CELLS, SEQUENTIAL_IMPLS

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the docs page whose marked block ``--docs`` rewrites, and its plots' folder
DOCS_PAGE = ROOT / "docs" / "parallel.md"
DOCS_FIGURES = ROOT / "docs" / "figures" / "parallel"
BEGIN, END = "<!-- parallel:begin -->", "<!-- parallel:end -->"

#: how the times are taken, as the report states it
TIMING_TEXT = ("fwd+bwd (`jax.value_and_grad` of mean((ys @ w_out - target)²) with respect to the params and "
               "the inputs, jitted, compiled ahead of time and timed apart); per case, every row compiled, "
               "called once and checked against impl=\"scan\", then timed together in rounds that run each "
               "row once in a rotating order (fewer rounds for calls longer than --budget s together; a call "
               "longer than that is timed once, by its first call); best (min) over the rounds, median beside it")

LABELS = {"scan": "scan (sequential)", "auto": "associative scan", "fused": "fused (sequential)",
          "deer": "DEER", "quasi": "quasi-DEER", "elk": "ELK", "quasi-elk": "quasi-ELK"}


# --------------------------------------------------------------------------
# crossovers


def crossover(points: list[tuple[int, float]]) -> dict[str, Any]:
    """Where parallel starts to beat sequential, from ``(T, parallel /
    sequential time)`` points: the first T at which the ratio drops below 1
    after a T at which it was above, its log-log interpolation between the
    two (``T``), or that it is above (or below) 1 at every T measured."""
    points = sorted(points)
    if not points:
        return {"verdict": "not measured", "T": None, "points": []}
    out: dict[str, Any] = {"points": points, "T": None}
    if all(r < 1 for _, r in points):
        out["verdict"] = f"parallel faster at every T measured (from T={points[0][0]})"
        return out
    for (t0, r0), (t1, r1) in itertools.pairwise(points):
        if r0 >= 1 > r1:
            x = math.log(t0) + (math.log(t1) - math.log(t0)) * math.log(r0) / (math.log(r0) - math.log(r1))
            out["T"] = math.exp(x)
            out["verdict"] = f"parallel faster from T ≈ {out['T']:.3g} (between {t0} and {t1})"
            return out
    t, r = points[-1]
    if r < 1:  # below 1 at the end after a rise: report the last crossing found above
        out["verdict"] = f"parallel faster at T={t} (mixed below)"
    else:
        out["verdict"] = f"sequential faster at every T measured (parallel {r:.3g}× its time at T={t})"
    return out


def _seconds(rows: list[dict[str, Any]]) -> dict[tuple, float]:
    return {(r["part"], r["cell"], r["T"], r["H"], r["impl"]): r["fwdbwd"]["seconds"]
            for r in rows if r["status"] == "ok"}


def crossovers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per linear cell (associative scan against ``scan``) and per Newton
    (cell, H, method) against each sequential engine: :func:`crossover`."""
    t = _seconds(rows)
    out = []
    linear = sorted({(r["cell"], r["H"]) for r in rows if r["part"] == "linear"}, key=lambda k: list(LINEAR_CELLS).index(k[0]))
    for cell, H in linear:
        pts = [(k[2], s / t[("linear", cell, k[2], H, "scan")]) for k, s in t.items()
               if k[:2] == ("linear", cell) and k[3] == H and k[4] == "auto" and ("linear", cell, k[2], H, "scan") in t]
        out.append({"part": "linear", "cell": cell, "H": H, "impl": "auto", "versus": "scan", **crossover(pts)})
    newton = sorted({(r["cell"], r["H"]) for r in rows if r["part"] == "newton"},
                    key=lambda k: (list(NEWTON_CELLS).index(k[0]), k[1]))
    for cell, H in newton:
        for method in METHODS:
            for seq in SEQUENTIAL_IMPLS:
                pts = [(k[2], s / t[("newton", cell, k[2], H, seq)]) for k, s in t.items()
                       if k[:2] == ("newton", cell) and k[3] == H and k[4] == method
                       and ("newton", cell, k[2], H, seq) in t]
                if pts:
                    out.append({"part": "newton", "cell": cell, "H": H, "impl": method, "versus": seq,
                                **crossover(pts)})
    return out


# --------------------------------------------------------------------------
# Markdown


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _ms(r: dict[str, Any] | None) -> str:
    """Best ms (median ms), or what the row was instead of timed."""
    if r is None:
        return "—"
    if r["status"] != "ok":
        return {"memory-only": "not run†", "check failed": "check failed", "error": "error"}.get(r["status"], "—")
    f = r["fwdbwd"]
    best, median = f["ms"], f["median_ms"]
    spec = ".0f" if best >= 100 else ".1f"
    return f"{best:{spec}} ({median:{spec}})" + ("" if f["repeats"] > 1 else "¹")


def _mb(r: dict[str, Any] | None) -> str:
    m = (r or {}).get("memory") or {}
    return "—" if m.get("total") is None else f"{m['total'] / 1e6:.0f}"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if not a or not b or a["status"] != "ok" or b["status"] != "ok":
        return "—"
    return f"{a['fwdbwd']['seconds'] / b['fwdbwd']['seconds']:.2f}×"


def _index(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(r["part"], r["cell"], r["T"], r["H"], r["impl"]): r for r in rows}


def linear_table(rows: list[dict[str, Any]]) -> list[str]:
    by = _index(rows)
    cases = [(r["cell"], r["T"], r["B"], r["I"], r["H"]) for r in rows if r["part"] == "linear" and r["impl"] == "scan"]
    if not cases:
        return []
    lines = [
        ("| cell | T | B, I, H | scan ms | assoc. scan ms | assoc./scan | scan µs/step | assoc. µs/step | "
        "scan MB | assoc. MB | rel. error |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, T, B, I, H in cases:
        s, a = by.get(("linear", cell, T, H, "scan")), by.get(("linear", cell, T, H, "auto"))
        checked = (a or {}).get("check") or {}
        err = (checked.get("full_T") or checked).get("max_rel_err")
        lines.append(
            f"| {cell} | {T} | {B}, {I}, {H} | {_ms(s)} | {_ms(a)} | {_ratio(a, s)} | "
            f"{_fmt(s and s['fwdbwd'] and s['fwdbwd']['us_per_step'], '.2f')} | "
            f"{_fmt(a and a['fwdbwd'] and a['fwdbwd']['us_per_step'], '.2f')} | {_mb(s)} | {_mb(a)} | "
            f"{_fmt(err, '.1e')} |")
    return lines


def newton_table(rows: list[dict[str, Any]]) -> list[str]:
    by = _index(rows)
    methods = [m for m in METHODS if any(r["impl"] == m for r in rows)]
    cases = [(r["cell"], r["T"], r["B"], r["H"]) for r in rows if r["part"] == "newton" and r["impl"] == "scan"]
    if not cases:
        return []
    head = "| cell | T | B | H | fused ms | scan ms |"
    for m in methods:
        head += f" {LABELS[m]} ms | iters | ×fused |"
    head += " MB: fused, scan" + "".join(f", {m}" for m in methods) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for cell, T, B, H in cases:
        f, s = by.get(("newton", cell, T, H, "fused")), by.get(("newton", cell, T, H, "scan"))
        line = f"| {cell} | {T} | {B} | {H} | {_ms(f)} | {_ms(s)} |"
        for m in methods:
            r = by.get(("newton", cell, T, H, m))
            info = (r or {}).get("newton")
            iters = "—" if info is None else (f"{info['iterations']}" + (" (fell back)" if info["fell_back"] else ""))
            line += f" {_ms(r)} | {iters} | {_ratio(r, f)} |"
        line += " " + ", ".join(_mb(by.get(("newton", cell, T, H, i))) for i in ("fused", "scan", *methods)) + " |"
        lines.append(line)
    return lines


def crossover_table(cross: list[dict[str, Any]]) -> list[str]:
    if not cross:
        return []
    lines = ["| cell | H | parallel | against | parallel / sequential time at each T | crossover |",
             "|---|---|---|---|---|---|"]
    for c in cross:
        pts = ", ".join(f"T={T}: {r:.2f}" for T, r in c["points"])
        lines.append(f"| {c['cell']} | {c['H']} | {LABELS[c['impl']]} | {c['versus']} | {pts} | {c['verdict']} |")
    return lines


def iteration_tables(it: dict[str, Any]) -> list[str]:
    if not it or not it.get("rows"):
        return []
    models = it["models"]
    m0 = models[0]
    lines = [
        (f"Trained: the cell and a linear readout on the adding problem, T={m0['T']}, {m0['steps']} steps of "
         f"Adam (lr {m0['lr']:g}, global-norm clipping at 1), batch {m0['batch']}, the fused engine. "
         "Baseline MSE 0.167."),
        "",
        "| cell | H | final train loss | test MSE | training s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m['cell']} | {m['H']} | {m['final_train_loss']:.4f} | {m['test_mse']:.4f} | {m['seconds']:.1f} |"
              for m in models]
    lines += ["", ("Newton iterations (final residual) on adding-problem inputs, B="
              f"{it['rows'][0]['B']}, tol {default_tol('float32'):.2g}, at most 100 iterations:"), "",
              "| cell | H | method | T | at initialisation | trained |", "|---|---|---|---|---|---|"]
    by = {(r["cell"], r["H"], r["method"], r["T"], r["params"]): r for r in it["rows"]}
    for cell, H, method, T, which in by:
        if which != "init":
            continue
        cells = []
        for w in ("init", "trained"):
            r = by[(cell, H, method, T, w)]
            mark = "" if r["converged"] else " not converged"
            cells.append(f"{r['iterations']} ({r['residual']:.1e}){mark}")
        lines.append(f"| {cell} | {H} | {LABELS[method]} | {T} | {cells[0]} | {cells[1]} |")
    return lines


def adding_table(adding: list[dict[str, Any]]) -> list[str]:
    if not adding:
        return []
    lines = ["| cell | T | steps | batch | H | lr | impl | final test MSE | solved (≤ 0.05) | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for a in adding:
        mse = a.get("final_test_loss")
        solved = "—" if mse is None else ("yes" if mse <= 0.05 else "no")
        lines.append(f"| {a['cell']} | {a['length']} | {a['steps_done']} | {a['batch']} | {a['hidden']} | "
                     f"{a['lr']:g} | {a['impl']} | {_fmt(mse, '.4f')} | {solved} | {_fmt(a.get('seconds'), '.0f')} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    meta, rows = result["meta"], result["rows"]
    load = meta["load"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
        (f"Load average (1 min) during the run: {load['start'][0]:.1f} at the start, {load['end'][0]:.1f} at the "
         f"end, {load['min']:.1f}–{load['max']:.1f} over the cases ({meta.get('cores', '?')} cores: a load above that many means other processes share them)  "),
        f"Date: {meta['date']}; total {meta['seconds'] / 60:.1f} min  ",
        f"Timing: {meta['timing']}",
        "",
    ]
    table = linear_table(rows)
    if table:
        lines += ["### Linear-recurrence cells: sequential against associative scan", "",
                  ("fwd+bwd, float32; *scan*: `jr.rnn(impl=\"scan\")`, a `lax.scan` over the cell's step, "
                   "differentiated by JAX; *assoc. scan*: `jr.rnn(impl=\"auto\")`, "
                   "`jax.lax.associative_scan` with its hand-written backward. ms per call: best (median); "
                   "MB: compiled temp + argument + output bytes; rel. error: the largest relative L2 error of "
                   "the loss and gradients against scan at the same T. The check that gates the timing is "
                   f"that error up to T={result['meta']['args'].get('check_steps', 1000)}, and above it the "
                   "same implementation's check at that T: over longer sequences float32 loses digits in "
                   "both implementations alike (at T=10000 the LRU's `theta_log` gradient is 8e-3 off a float64 "
                   "reference with scan, 9e-3 with the associative scan), so they need not agree to a fixed "
                   "tolerance."), "", *table, ""]
    table = newton_table(rows)
    if table:
        lines += ["### Nonlinear cells: sequential against Newton (DEER, quasi-DEER)", "",
                  ("fwd+bwd on adding-problem inputs (I=2), float32, initial params. *fused*: "
                   "`jr.rnn(impl=\"fused\")`, the sequential engine with its hand-written backward; *scan*: "
                   "`impl=\"scan\"`; the methods: `impl=\"parallel\", method=...` with the defaults (tol "
                   f"{default_tol('float32'):.2g}, "
                   "at most 100 iterations, `on_failure=\"fallback\"`: a run that does not converge is "
                   "recomputed by the sequential engine, inside the timed call; so is a gradient whose adjoint "
                   "solve does not converge). iters: Newton iterations "
                   "of the forward solve (`newton_convergence` on the same inputs). ×fused: time relative to "
                   "fused (below 1: faster). MB: compiled temp + argument + output bytes."), "", *table, ""]
    if any(r["status"] == "memory-only" for r in rows):
        lines.append("† compiled for its memory only, not run: " + "; ".join(sorted(
            {f"{r['reason']}" for r in rows if r["status"] == "memory-only"})) + "  ")
    if any(r["status"] == "ok" and r["fwdbwd"]["repeats"] == 1 for r in rows):
        lines.append("¹ one call (longer than --budget): its first call after compilation.  ")
    lines.append("")
    table = crossover_table(result.get("crossovers", []))
    if table:
        lines += ["### Crossovers", "",
                  ("Where the parallel form starts to beat the sequential one (fwd+bwd, best times); "
                  "log-log interpolation between the measured T."), "", *table, ""]
    table = iteration_tables(result.get("iterations") or {})
    if table:
        lines += ["### Newton iterations at initialisation and after training", "", *table, ""]
    table = adding_table(result.get("adding") or [])
    if table:
        a = result["adding"][0]
        lines += ["### Adding problem: the new cells beside LSTM and GRU", "",
                  (f"`jaxrnn train --task adding` (Adam, lr {a['lr']:g}, global-norm clipping at 1, batch "
                   f"{a['batch']}, H={a['hidden']}, seed {a.get('seed', 0)}); final test MSE on 1000 fixed "
                   "sequences; baseline 0.167; `benchmarks/parallel/adding.sh`."), "", *table, ""]
    failed = [r for r in rows if r["status"] in ("check failed", "error")]
    if failed:
        lines += ["### Failures", ""]
        lines += [f"- {r['impl']} at {r['cell']} T={r['T']} H={r['H']}: {r['status']}: {r['reason']}" for r in failed]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# plots


def plots(result: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    """linear_time.png, newton_time.png and newton_residuals.png, each
    legible at about 700 px wide."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11})
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    device = result["meta"]["device"]
    written = []

    lin = [r for r in rows if r["part"] == "linear"]
    if lin:
        fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
        for k, cell in enumerate(c for c in LINEAR_CELLS if any(r["cell"] == c for r in lin)):
            for impl, style, marker in (("scan", "-", "o"), ("auto", "--", "s")):
                pts = sorted((r["T"], r["fwdbwd"]["ms"]) for r in lin if r["cell"] == cell and r["impl"] == impl)
                if pts:
                    ax.plot(*zip(*pts), style, marker=marker, color=f"C{k}", label=f"{cell}, {LABELS[impl]}")
        r0 = lin[0]
        ax.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="ms per call (fwd+bwd, best)",
               title=f"Linear cells, B={r0['B']} I={r0['I']} H={r0['H']}: sequential vs parallel\n{device}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=9)
        written.append(_save(fig, out / "linear_time.png", plt))

    new = [r for r in rows if r["part"] == "newton"]
    if new:
        cells = [c for c in NEWTON_CELLS if any(r["cell"] == c for r in new)]
        Ts = sorted({r["T"] for r in new})
        impls = [i for i in (*SEQUENTIAL_IMPLS, *METHODS) if any(r["impl"] == i for r in new)]
        fig, axes = plt.subplots(len(Ts), len(cells), figsize=(5 * len(cells), 3.8 * len(Ts)), squeeze=False,
                                 layout="constrained")
        for i, T in enumerate(Ts):
            for j, cell in enumerate(cells):
                ax = axes[i][j]
                for k, impl in enumerate(impls):
                    pts = sorted((r["H"], r["fwdbwd"]["ms"]) for r in new
                                 if r["cell"] == cell and r["T"] == T and r["impl"] == impl)
                    if pts:
                        ax.plot(*zip(*pts), "-" if impl in SEQUENTIAL_IMPLS else "--", marker="osv^DP"[k % 6],
                                color=f"C{k}", label=LABELS[impl])
                Hs = sorted({r["H"] for r in new})
                ax.set(xscale="log", yscale="log", xlabel="H (hidden size)", ylabel="ms per call (fwd+bwd)",
                       title=f"{cell}, T={T}, B={new[0]['B']}")
                ax.set_xticks(Hs, [str(h) for h in Hs])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=9)
        _title(fig, f"Nonlinear cells: sequential engines vs Newton (adding-problem inputs); {device}")
        written.append(_save(fig, out / "newton_time.png", plt))

    it = (result.get("iterations") or {}).get("rows") or []
    if it:
        tol = default_tol("float32")
        T = max(r["T"] for r in it)
        cells = [c for c in NEWTON_CELLS if any(r["cell"] == c for r in it)]
        methods = [m for m in METHODS if any(r["method"] == m for r in it)]
        Hs = sorted({r["H"] for r in it})
        fig, axes = plt.subplots(len(cells), len(methods), figsize=(5 * len(methods), 3.8 * len(cells)),
                                 squeeze=False, sharey=True, layout="constrained")
        CAP, diverged = 1e4, False
        for i, cell in enumerate(cells):
            for j, method in enumerate(methods):
                ax = axes[i][j]
                for k, H in enumerate(Hs):
                    for which, style in (("init", "-"), ("trained", "--")):
                        r = next((r for r in it if (r["cell"], r["method"], r["T"], r["H"], r["params"])
                                  == (cell, method, T, H, which)), None)
                        if r is None:
                            continue
                        # a diverged run (above CAP, or inf) is drawn at CAP with a marker
                        h = [min(v, CAP) if math.isfinite(v) else CAP for v in r["history"]]
                        ax.plot(range(len(h)), h, style, color=f"C{k}", label=f"H={H}, {which}")
                        over = [(i, v) for i, v in enumerate(h) if v >= CAP]
                        if over:
                            ax.plot(*zip(*over), "X", color=f"C{k}", ms=9, mec="k")
                            diverged = True
                ax.axhline(tol, color="k", lw=0.8, ls=":")
                ax.set(yscale="log", xlabel="Newton iteration", ylabel="max residual",
                       title=f"{cell}, {LABELS[method]}, T={T}")
                ax.grid(True, which="both", alpha=0.3)
        axes[0][-1].legend(fontsize=8, ncol=1)
        _title(fig, "Newton residual per iteration: initial params (solid) vs trained on the adding problem "
                    "(dashed); dotted: tol" + (f"; X: diverged (residual above {CAP:g} or inf)" if diverged else ""))
        written.append(_save(fig, out / "newton_residuals.png", plt))
    return written


def _title(fig: Any, text: str) -> None:
    """A suptitle wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 11)
    fig.suptitle(textwrap.fill(text, width), fontsize=11)


def _save(fig: Any, path: pathlib.Path, plt: Any) -> pathlib.Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------
# docs

DRAFT = """# Parallel in time

!!! warning "Draft"
    The measurements below are written by `python -m benchmarks.parallel --docs`;
    the prose of this page is to come.

jaxrnn runs the linear-recurrence cells (`MinGRU`, `MinLSTM`, `LRU`, `RGLRU`)
by an associative scan (`jax.lax.associative_scan`, depth `O(log T)`), and the
nonlinear cells (`GRU`, `LSTM`, `SimpleRNN`, `IRNN`) with
`jr.rnn(..., impl="parallel", method="deer" | "quasi" | "elk" | "quasi-elk")`:
Newton's method over the whole sequence, each iteration a linear recurrence
solved by a parallel scan. This page measures when that pays, against the
sequential engines, on the machine the benchmark ran on.

## Measurements

{begin}
{end}
"""


def write_docs(md: str, pngs: list[pathlib.Path], page: pathlib.Path = DOCS_PAGE,
               figures: pathlib.Path = DOCS_FIGURES) -> None:
    """Puts the tables between the markers of ``page`` (created as a draft
    with the markers if missing) and the plots into ``figures``."""
    if not page.exists():
        page.write_text(DRAFT.format(begin=BEGIN, end=END))
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"--docs: {page} lacks the markers {BEGIN!r} and {END!r}")
    figures.mkdir(parents=True, exist_ok=True)
    for path in pngs:
        shutil.copy(path, figures / path.name)
    rel = pathlib.Path(os.path.relpath(figures, page.parent)).as_posix()
    block = [BEGIN, "", "<!-- written by python -m benchmarks.parallel --docs; edits here are overwritten -->", "",
             md, ""]
    block += [f"![{p.stem.replace('_', ' ')}]({rel}/{p.name})\n" for p in pngs]
    block += [END]
    head, rest = text.split(BEGIN, 1)
    page.write_text(head + "\n".join(block) + rest.split(END, 1)[1])
    print(f"wrote the tables into {page} and the plots into {figures}")
