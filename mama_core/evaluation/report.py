"""`mama eval --report DIR`: an evaluation as files to look at, share and put in a paper.

Writes into DIR:
- `results.md` / `results.csv`: the paper-style table (`tables.markdown_table`) and one CSV
  row per task with every metric and its 95 % bootstrap interval;
- per task: `roc_<task>.png` (one-vs-rest ROC curves with their AUCs),
  `confusion_<task>.png` (counts), `reliability_<task>.png` (top-label reliability diagram
  with its expected calibration error) and `reliability_<task>.csv` (the bins);
- for `--task localization`: `pointing_<n>.png`, a few pointing-game views (image, the
  sentence's similarity map, the true lesion boxes, the map maximum);
- `report.html`: one self-contained page (figures embedded as data URIs, each also linked
  to its PNG) with the tables, the figures, and the model, data and command behind them.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend: the engine never touches a GUI toolkit).
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mama_core.errors import DataError

CLASS_NAMES = {
    "birads": [f"BI-RADS {i}" for i in range(7)],
    "density": ["A (fatty)", "B (scattered)", "C (heterogeneous)", "D (extreme)"],
    "cancer": ["no cancer", "cancer"],
}
RELIABILITY_BINS = 10
POINTING_EXAMPLES = 4  # views drawn for the pointing game (hits and misses mixed)
CSV_FIELDS = ("task", "mode", "fraction", "model", "n_train", "n_test", "balanced_accuracy",
              "balanced_accuracy_lo", "balanced_accuracy_hi", "auc", "auc_lo", "auc_hi", "sensitivity",
              "specificity", "ece", "auc_classes", "absent_classes")


@dataclass
class ReportContext:
    """What produced the numbers (shown at the top of the page)."""

    model: str
    model_fingerprint: str | None
    data: str
    command: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Figure:
    file: str
    title: str
    caption: str = ""


@dataclass
class ReportFiles:
    out_dir: Path
    html: Path
    tables: list[Path]
    figures: list[Path]


# --------------------------------------------------------------------------- entry point


def write_report(out_dir: str | Path, results: Sequence[dict], context: ReportContext, markdown: str = "",
                 localization: dict | None = None, predictor: Any = None, data_dir: str | Path | None = None
                 ) -> ReportFiles:
    """Write the report files; `results` are `evaluate` dicts made with keep_predictions=True."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the report folder: {exc.strerror or exc}", path=out) from exc
    tables = [_write_text(out / "results.md", markdown), _write_csv(out / "results.csv", results)]
    sections: list[tuple[str, list[Figure]]] = []
    for result in results:
        figures, bins_csv = _task_figures(out, result)
        tables.append(bins_csv)
        sections.append((_task_title(result), figures))
    if localization is not None and predictor is not None and data_dir is not None:
        sections.append((_pointing_title(localization),
                         _pointing_figures(out, localization, predictor, Path(data_dir))))
    html_path = out / "report.html"
    _write_text(html_path, _html(out, context, markdown, results, tables, sections))
    figures = [out / f.file for _, figs in sections for f in figs]
    return ReportFiles(out, html_path, tables, figures)


def _write_text(path: Path, text: str) -> Path:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write: {exc.strerror or exc}", path=path) from exc
    return path


# --------------------------------------------------------------------------- tables


def _ci(metrics: dict, key: str) -> tuple[Any, Any]:
    ci = (metrics.get("ci95") or {}).get(key)
    return (ci[0], ci[1]) if ci else ("", "")


def csv_row(result: dict) -> dict[str, Any]:
    m = result["metrics"]
    pred = result.get("predictions")
    ece = task_ece(pred["y_true"], pred["probs"]) if pred else None
    (b_lo, b_hi), (a_lo, a_hi) = _ci(m, "balanced_accuracy"), _ci(m, "auc")
    return {"task": result["task"], "mode": result["mode"], "fraction": result.get("fraction"),
            "model": result.get("model"), "n_train": result.get("n_train"), "n_test": result.get("n_test"),
            "balanced_accuracy": m["balanced_accuracy"], "balanced_accuracy_lo": b_lo, "balanced_accuracy_hi": b_hi,
            "auc": m.get("auc"), "auc_lo": a_lo, "auc_hi": a_hi, "sensitivity": m.get("sensitivity"),
            "specificity": m.get("specificity"), "ece": ece,
            "auc_classes": " ".join(map(str, m.get("auc_classes", []))),
            "absent_classes": " ".join(map(str, m.get("absent_classes", [])))}


def _write_csv(path: Path, results: Sequence[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for result in results:
            writer.writerow({k: ("" if v is None else v) for k, v in csv_row(result).items()})
    return path


# --------------------------------------------------------------------------- calibration


def task_ece(y_true, probs) -> float:
    from mama_core.evaluation.calibration import expected_calibration_error

    return expected_calibration_error(y_true, probs, RELIABILITY_BINS)


# --------------------------------------------------------------------------- figures


def _new_figure(width: float = 4.8, height: float = 4.2, ncols: int = 1):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.subplots(1, ncols)


def _save(fig: Any, path: Path) -> None:
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise DataError(f"cannot write the figure: {exc.strerror or exc}", path=path) from exc


def _task_title(result: dict) -> str:
    from mama_core.evaluation.tables import TASK_TITLES, setting_label

    return f"{TASK_TITLES.get(result['task'], result['task'])} — {setting_label(result)} (n = {result['n_test']})"


def _task_figures(out: Path, result: dict) -> tuple[list[Figure], Path]:
    from mama_core.evaluation.calibration import reliability_bins

    pred = result.get("predictions")
    if not pred:
        raise ValueError("report figures need results evaluated with keep_predictions=True")
    task = result["task"]
    y, probs = np.asarray(pred["y_true"], dtype=int), np.asarray(pred["probs"], dtype=np.float64)
    names = CLASS_NAMES.get(task, [str(c) for c in range(probs.shape[1])])
    bins = reliability_bins(y, probs, RELIABILITY_BINS)
    figures = [
        roc_figure(out / f"roc_{task}.png", y, probs, names, result["metrics"]),
        confusion_figure(out / f"confusion_{task}.png", np.asarray(result["metrics"]["confusion"]), names),
        reliability_figure(out / f"reliability_{task}.png", bins),
    ]
    return figures, _bins_csv(out / f"reliability_{task}.csv", bins)


def roc_figure(path: Path, y: np.ndarray, probs: np.ndarray, names: list[str], metrics: dict) -> Figure:
    """One-vs-rest ROC curve per class with positives and negatives (binary: one curve)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _new_figure()
    candidates = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    classes = [c for c in candidates if 0 < np.sum(y == c) < len(y)]  # a curve needs both kinds
    for c in classes:
        fpr, tpr, _ = roc_curve(y == c, probs[:, c])
        auc = roc_auc_score(y == c, probs[:, c])
        ax.plot(fpr, tpr, lw=1.6, label=f"{names[c]} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="chance")
    if not classes:
        ax.text(0.5, 0.55, "no curve: no class has both positive\nand negative test images", ha="center")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    auc = metrics.get("auc")
    ax.set_title("ROC, one vs rest" + (f" — macro AUC {auc:.3f}" if auc is not None else " — AUC undefined"))
    ax.legend(loc="lower right", fontsize=7)
    _save(fig, path)
    absent = metrics.get("absent_classes") or []
    caption = f"classes without positives or negatives in the test set: {', '.join(names[c] for c in absent)}" \
        if absent else ""
    return Figure(path.name, "ROC curves", caption)


def confusion_figure(path: Path, confusion: np.ndarray, names: list[str]) -> Figure:
    fig, ax = _new_figure(4.8 + 0.3 * len(names), 4.2 + 0.3 * len(names))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (counts)")
    top = confusion.max() if confusion.size else 0
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, str(int(count)), ha="center", va="center", fontsize=8,
                color="white" if top and count > top / 2 else "black")
    _save(fig, path)
    return Figure(path.name, "Confusion matrix", "rows: true class, columns: predicted class (argmax)")


def reliability_figure(path: Path, bins: Any) -> Figure:
    """The shared reliability diagram (`calibration.plot_reliability`) of this model's
    top-label confidence."""
    from mama_core.evaluation.calibration import plot_reliability

    plot_reliability({"this model": bins}, path, title="Reliability (top-label confidence)")
    counts = ", ".join(str(int(c)) for c in bins.count)
    return Figure(path.name, f"Reliability diagram — ECE {bins.ece():.3f}",
                  f"{len(bins.count)} equal-width confidence bins; images per bin: {counts}")


def _bins_csv(path: Path, bins: Any) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["bin_lo", "bin_hi", "count", "mean_confidence", "accuracy"])
        for i, count in enumerate(bins.count):
            conf, acc = bins.confidence[i], bins.accuracy[i]
            writer.writerow([f"{bins.edges[i]:.2f}", f"{bins.edges[i + 1]:.2f}", int(count),
                             "" if count == 0 else f"{conf:.4f}", "" if count == 0 else f"{acc:.4f}"])
    return path


# --------------------------------------------------------------------------- pointing game


def _pointing_title(loc: dict) -> str:
    return (f"Pointing game — \"{loc['sentence']}\": {loc['hits']}/{loc['views']} views "
            f"({100 * loc['hit_rate']:.1f} %) have the map maximum inside a true {loc['lesion_type']} box")


def pick_examples(details: list[dict], n: int = POINTING_EXAMPLES) -> list[dict]:
    """Hits and misses alternately (both kinds shown when there are both), in file order."""
    hits = [d for d in details if d["hit"]]
    misses = [d for d in details if not d["hit"]]
    picked: list[dict] = []
    while len(picked) < n and (hits or misses):
        for pool in (hits, misses):
            if pool and len(picked) < n:
                picked.append(pool.pop(0))
    return picked


def _pointing_figures(out: Path, loc: dict, predictor: Any, data_dir: Path) -> list[Figure]:
    return [pointing_figure(out / f"pointing_{n}.png", predictor, data_dir / detail["path"], loc["sentence"], detail)
            for n, detail in enumerate(pick_examples(loc["details"]), start=1)]


def pointing_figure(path: Path, predictor: Any, image_path: Path, sentence: str, detail: dict) -> Figure:
    """The image, the sentence's map over it, the true lesion boxes (green) and the map maximum (x).

    Drawn in the canonical orientation of `read_image` (chest wall on the left), the frame of
    the pointing game's `boxes`."""
    from matplotlib.patches import Rectangle

    from mama_core.dicom import read_image

    image = read_image(image_path)
    sim = next(iter(predictor.similarity_maps(str(image_path), [sentence]).maps.values()))[0]
    fig, (left, right) = _new_figure(8.0, 4.6, ncols=2)
    for ax in (left, right):
        ax.imshow(image.pixels, cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
    shown = right.imshow(sim, cmap="inferno", alpha=0.55)
    fig.colorbar(shown, ax=right, shrink=0.7, label="cosine similarity")
    for x0, y0, x1, y1 in detail.get("boxes", []):
        for ax in (left, right):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", lw=1.5))
    row, col = np.unravel_index(int(np.argmax(sim)), sim.shape)
    right.plot([col], [row], marker="x", color="cyan", markersize=10, mew=2)
    verdict = "hit" if detail["hit"] else "miss"
    left.set_title(f"{detail['path']} ({detail.get('view') or '?'})", fontsize=8)
    right.set_title(f"map maximum: {verdict}", fontsize=9)
    _save(fig, path)
    return Figure(path.name, f"{detail['path']}: {verdict}",
                  "green: true lesion boxes; x: map maximum; image shown chest wall left")


# --------------------------------------------------------------------------- HTML

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .6em;font-size:.9em}
th{background:#eee}figure{display:inline-block;margin:.6em;vertical-align:top;max-width:520px}
figure img{max-width:100%}figcaption{font-size:.8em;color:#555}.meta td:first-child{font-weight:bold}
.note{color:#a33}"""


def _html(out: Path, context: ReportContext, markdown: str, results: Sequence[dict], tables: list[Path],
          sections: list[tuple[str, list[Figure]]]) -> str:
    esc = html.escape
    meta = {"model": context.model, "model fingerprint": context.model_fingerprint, "data": context.data,
            "command": context.command, **context.settings,
            "written": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>MaMA evaluation — {esc(context.model)}</title><style>{_STYLE}</style></head><body>",
             "<h1>MaMA evaluation report</h1>",
             "<p class='note'>Research use only — not for diagnosis.</p>",
             "<table class='meta'>" + "".join(f"<tr><td>{esc(k)}</td><td><code>{esc(str(v))}</code></td></tr>"
                                             for k, v in meta.items() if v is not None) + "</table>"]
    if results:
        parts += ["<h2>Results</h2>", _results_table(results),
                  "<p>Tables: " + ", ".join(f"<a href='{esc(t.name)}'>{esc(t.name)}</a>" for t in tables) + "</p>",
                  f"<details><summary>Paper-style table (Markdown)</summary><pre>{esc(markdown)}</pre></details>"]
        notes = [f"{r['task']}: {n}" for r in results for n in r.get("notes", [])]
        if notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    for title, figures in sections:
        parts.append(f"<h2>{esc(title)}</h2>")
        parts += [_figure_html(out, f) for f in figures]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _results_table(results: Sequence[dict]) -> str:
    def pct(v: Any) -> str:
        return "—" if v in (None, "") else f"{100 * float(v):.1f}"

    head = ["task", "setting", "n test", "bACC % [95 % CI]", "AUC % [95 % CI]", "sens. %", "spec. %", "ECE"]
    from mama_core.evaluation.tables import setting_label

    rows = []
    for result in results:
        r = csv_row(result)
        bacc = f"{pct(r['balanced_accuracy'])} [{pct(r['balanced_accuracy_lo'])}, {pct(r['balanced_accuracy_hi'])}]"
        auc = f"{pct(r['auc'])} [{pct(r['auc_lo'])}, {pct(r['auc_hi'])}]"
        ece = "—" if r["ece"] is None else f"{r['ece']:.3f}"
        rows.append([r["task"], setting_label(result), r["n_test"], bacc, auc, pct(r["sensitivity"]),
                     pct(r["specificity"]), ece])
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _figure_html(out: Path, figure: Figure) -> str:
    data = base64.b64encode((out / figure.file).read_bytes()).decode("ascii")
    name = html.escape(figure.file)
    caption = html.escape(figure.title + (f" — {figure.caption}" if figure.caption else ""))
    return (f"<figure><a href='{name}'><img src='data:image/png;base64,{data}' alt='{name}'></a>"
            f"<figcaption>{caption} (<a href='{name}'>{name}</a>)</figcaption></figure>")

