"""Markdown tables laid out like the paper's Tables 1-3: one row per method/setting, a bACC
and an AUC column per task, values in percent; the paper's MaMA numbers as reference rows."""

from __future__ import annotations

from typing import Any

TASK_TITLES = {"birads": "BI-RADS", "density": "Density", "cancer": "Cancer (RSNA)"}
# (setting, task) -> (bACC %, AUC %) as printed in the MaMA paper (arXiv 2409.18119).
PAPER_MAMA = {
    ("zero-shot", "birads"): (31.04, 74.83),
    ("zero-shot", "density"): (75.40, 93.46),
    ("linear-probe", "cancer"): (67.50, 73.99),
}


def setting_label(result: dict) -> str:
    mode = result["mode"]
    if mode in ("linear-probe", "finetune"):
        return f"{mode} {result['fraction'] * 100:g}%"
    return mode


def _cell(value: float | None, ci: list | None) -> str:
    if value is None:
        return "—"
    text = f"{value * 100:.2f}"
    if ci:
        text += f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"
    return text


def _row_cells(results: list[dict], tasks: list[str]) -> list[str]:
    cells = []
    for task in tasks:
        r = next((x for x in results if x["task"] == task), None)
        m = r["metrics"] if r else {}
        ci = m.get("ci95", {}) if m else {}
        cells += [_cell(m.get("balanced_accuracy"), ci.get("balanced_accuracy")), _cell(m.get("auc"), ci.get("auc"))]
    return cells


def markdown_table(results: list[dict[str, Any]], model_name: str) -> str:
    """Results (dicts from `evaluate`) as a markdown table plus the paper's reference rows."""
    tasks = [t for t in TASK_TITLES if any(r["task"] == t for r in results)]
    header = ["Method", "Setting"] + [f"{TASK_TITLES[t]} {m}" for t in tasks for m in ("bACC", "AUC")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for setting in dict.fromkeys(setting_label(r) for r in results):
        group = [r for r in results if setting_label(r) == setting]
        lines.append("| " + " | ".join([model_name, setting] + _row_cells(group, tasks)) + " |")
    for (setting, task), (bacc, auc) in PAPER_MAMA.items():
        if task in tasks:
            row = []
            for t in tasks:
                row += [f"{bacc:.2f}", f"{auc:.2f}"] if t == task else ["", ""]
            lines.append("| " + " | ".join(["MaMA (paper)", setting] + row) + " |")
    notes = [f"- {r['task']} {setting_label(r)}: {n}" for r in results for n in r.get("notes", [])]
    text = "\n".join(lines)
    if notes:
        text += "\n\nNotes:\n" + "\n".join(notes)
    return text + "\n\nValues in %, 95 % bootstrap intervals in brackets. Research use only — not for diagnosis.\n"
