"""The fine-tune dialog's logic without Qt: the command line, the child's JSON lines (replayed
from real `mama finetune --json` runs stored in data/), the measured ETA, the curve points and
the run's states (done, cancelled by the reader or by the engine, failed, bad lines)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mama_core.errors import ConfigError
from mama_core.finetune.config import MODES, TASK_CLASSES, FinetuneConfig
from mama_core.finetune.reports import FinetuneReport
from mama_desktop.finetune_inputs import (
    MODE_HELP,
    TASK_TITLES,
    default_steps,
    modes,
    plan_text,
    table_inputs,
    tasks,
    worklist_labels,
)
from mama_desktop.finetune_job import (
    ESTIMATING,
    FinetuneJob,
    FinetuneRequest,
    JobState,
    JsonLines,
    StepTimer,
    classify,
    format_duration,
    last_console_segment,
)

DATA = Path(__file__).parent / "data"
# `mama finetune --json` on the desktop's demo studies (8 studies, seed 2024, 256 rows) with the
# desktop tests' tiny model: a 20-step linear probe, and a 6-step LoRA run (an excerpt: the head
# stage's first and last steps, its early stop, the encoder stage, compare, save, summary).
LINEAR_PROBE = DATA / "finetune-linear-probe.jsonl"
LORA = DATA / "finetune-lora-excerpt.jsonl"


def replay(path: Path, job: FinetuneJob, seed: int = 0) -> tuple[list, list, list]:
    """Feed a captured stdout to the job in random chunks, as the pipe delivers it."""
    data, rng, reader = path.read_bytes(), random.Random(seed), JsonLines()
    items, at = [], 0
    while at < len(data):
        size = rng.randint(1, 700)
        items += reader.feed(data[at:at + size])
        at += size
    items += reader.flush()
    shown, summaries, logs = [], [], []
    for kind, payload in map(classify, items):
        if kind == "report":
            shown.append((payload, job.on_report(payload)))
        elif kind == "summary":
            summaries.append(payload)
            job.on_summary(payload)
        else:
            logs.append(payload)
    return shown, summaries, logs


def started() -> FinetuneJob:
    job = FinetuneJob()
    job.start(FinetuneRequest(data="/cases"))
    return job


def test_the_model_imports_neither_qt_nor_torch() -> None:
    code = ("import sys, mama_desktop.finetune_job, mama_desktop.finetune_inputs\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'shiboken6', 'pyqtgraph', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_defaults_and_choices_are_the_engines() -> None:
    config = FinetuneConfig()
    assert tasks()[0] == config.task and sorted(tasks()) == sorted(TASK_CLASSES)
    assert modes()[0] == config.mode and sorted(modes()) == sorted(MODES)
    assert set(MODE_HELP) == set(MODES) and set(TASK_TITLES) == set(TASK_CLASSES), "words for every choice"
    assert [default_steps(m) for m in MODES] == [FinetuneConfig(mode=m).total_steps(0) for m in MODES]
    request = FinetuneRequest(data="/d")
    assert (request.task, request.mode, request.model) == (config.task, config.mode, config.base_model)


def test_request_builds_the_command_line_and_the_engine_validates() -> None:
    request = FinetuneRequest(data="/d", task="birads", mode="lora", labels="/l.csv", max_steps=7, device="cpu")
    assert request.cli_args() == ["--data", "/d", "--task", "birads", "--mode", "lora", "--model", "active",
                                  "--labels", "/l.csv", "--max-steps", "7", "--device", "cpu"]
    program, argv = request.command()
    assert Path(program).exists() and argv[:3] == ["-m", "mama_core.cli", "finetune"] and argv[-1] == "--json"
    assert "--device" not in FinetuneRequest(data="/d", device="auto").cli_args()
    for bad, name in (({"mode": "magic"}, "mode"), ({"task": "age"}, "task"), ({"max_steps": 0}, "max_steps"),
                      ({"data": ""}, "data")):
        with pytest.raises(ConfigError, match=name):
            FinetuneRequest(**{"data": "/d", **bad})


def test_json_lines_are_split_across_chunks() -> None:
    reader = JsonLines()
    assert reader.feed(b'{"phase": "train", "st') == []
    got = reader.feed(b'ep": 3}\nLoading weights\n{"summary": true}\n{"pha')
    assert got == [{"phase": "train", "step": 3}, "Loading weights", {"summary": True}]
    assert reader.feed(b'se": "done"}') == []
    assert reader.flush() == [{"phase": "done"}]
    assert last_console_segment("Loading 0%\rLoading 50%\rLoading 100%\r") == "Loading 100%"


def test_a_real_linear_probe_run_replayed() -> None:
    job = started()
    shown, summaries, logs = replay(LINEAR_PROBE, job)
    assert logs == [] and len(summaries) == 1
    reports = [r for r, _ in shown]
    assert [r["phase"] for r in reports][0] == "features" and reports[-1]["phase"] == "done"
    first, last_train = shown[0][1], [p for r, p in shown if r["phase"] == "validate"][-1]
    assert (first.value, first.maximum, first.eta) == (0, 32, ESTIMATING), "no ETA before a step is measured"
    assert (last_train.value, last_train.maximum) == (20, 20) and "best val bACC 0.375" in last_train.text
    assert [p.maximum for r, p in shown if r["phase"] == "save"] == [0, 0], "registering shows a busy bar"
    steps = [r for r in reports if r["phase"] in ("train", "validate")]
    assert job.curve.loss_x == [float(r["step"]) for r in steps]
    assert job.curve.loss_y == [r["loss"] for r in steps] and job.curve.bacc_y == [r["val_bacc"] for r in steps]
    assert job.finish(0) == JobState.DONE and job.version_id == summaries[0]["version_id"]
    assert job.comparison["task"] == "density" and job.status_text() == f"Finished — new version {job.version_id}"


def test_eta_is_measured_from_the_reported_step_times() -> None:
    job = started()
    shown, _, _ = replay(LINEAR_PROBE, job)
    training = [(r, p) for r, p in shown if r["phase"] in ("train", "validate")]
    assert training[0][1].eta == ESTIMATING, "the first step alone measures nothing"
    report, progress = training[10]  # step 11 of 20: ten measured intervals
    rate = (report["elapsed_s"] - training[0][0]["elapsed_s"]) / (report["step"] - training[0][0]["step"])
    expected = rate * (report["total_steps"] - report["step"])
    assert progress.eta == f"about {format_duration(expected)} left in this phase"
    assert report["eta_s"] is not None, "the engine's own guess is there but is not what the dialog shows"


def test_step_timer_follows_recent_steps_and_restarts_with_a_stage() -> None:
    timer = StepTimer(window=4)
    for step in range(1, 11):  # 2 s per step, then 0.5 s per step
        timer.add("train", step, 2.0 * step if step <= 5 else 10.0 + 0.5 * (step - 5))
    assert timer.seconds_per_step() == pytest.approx(0.5) and timer.eta(10, 30) == pytest.approx(10.0)
    timer.add("train", 10, 99.0)  # a repeated step (early-stop notice) changes nothing
    assert timer.seconds_per_step() == pytest.approx(0.5)
    timer.add("train", 1, 100.0)  # steps count again: a new stage
    assert timer.seconds_per_step() is None and timer.eta(1, 6) is None
    timer.add("compare", 2, None)
    assert timer.seconds_per_step() is None


def test_a_real_lora_run_continues_the_curve_across_its_stages() -> None:
    job = started()
    shown, _, _ = replay(LORA, job)
    head = [r for r, _ in shown if (r.get("extra") or {}).get("stage")]
    last_head = head[-1]["step"]
    assert [r["step"] for r in head].count(last_head) == 2, "the excerpt has the early-stop repeat"
    encoder = [(r, p) for r, p in shown if r["phase"] == "validate" and not (r.get("extra") or {}).get("stage")]
    assert encoder[0][1].eta == ESTIMATING, "a new stage is timed afresh"
    assert job.curve.loss_x[-len(encoder):] == [last_head + r["step"] for r, _ in encoder]
    assert len(job.curve.loss_x) == len(set(job.curve.loss_x)), "one point per step"
    assert job.curve.bacc_y[-len(encoder):] == [r["val_bacc"] for r, _ in encoder]
    assert job.finish(0) == JobState.DONE


def test_cancel_by_the_reader_and_too_late_to_cancel() -> None:
    job = started()
    assert job.can_cancel, "cancellable before the first report"
    job.on_report({"phase": "train", "step": 3, "total_steps": 10, "elapsed_s": 4.0})
    assert job.request_cancel() and job.state == JobState.CANCELLING and not job.request_cancel()
    assert job.status_text() == "Cancelling…"
    assert job.finish(-15, killed_by_user=True) == JobState.CANCELLED
    assert "nothing was registered" in job.status_text() and not job.running
    late = started()
    late.on_report({"phase": "save", "message": "registering the new model version"})
    assert not late.request_cancel() and late.state == JobState.RUNNING


@pytest.mark.parametrize("key", ["cancelled", "stopped"])
def test_a_cancel_reported_by_the_engine(key: str) -> None:
    job = started()
    line = FinetuneReport("done", message="cancelled: nothing was registered", cancelled=True).to_json()
    if key == "stopped":  # the engine may name it 'stopped', as the trainer's reports do
        line["stopped"] = line.pop("cancelled")
    job.on_report(json.loads(json.dumps(line)))
    job.on_summary({"summary": True, "version_id": None, key: True, "comparison": None})
    assert job.finish(1) == JobState.CANCELLED


def test_failed_runs() -> None:
    job = started()
    job.on_report({"phase": "features", "step": 0, "total_steps": 32})
    assert job.finish(2) == JobState.FAILED and job.status_text() == "Failed (exit code 2) — see the messages below"
    job = started()
    assert not job.on_summary({"summary": True, "version_id": None, "cancelled": False, "comparison": None})
    assert job.finish(0) == JobState.FAILED, "exit 0 without a registered version is no success"
    job = started()
    with pytest.raises(ConfigError, match="already"):
        job.start(FinetuneRequest(data="/cases"))


def test_bad_lines_are_messages_and_bad_fields_do_not_break_the_progress() -> None:
    reader = JsonLines()
    items = reader.feed(b'Traceback (most recent call last):\n[1, 2]\n{"no": "phase"}\n\xff\xfe oops\n')
    kinds = [classify(item) for item in items]
    assert [k for k, _ in kinds] == ["log"] * 4
    assert kinds[1][1] == "[1, 2]" and kinds[2][1] == '{"no": "phase"}' and kinds[3][1].endswith("oops")
    assert classify({"summary": "yes"})[0] == "log", "only a real summary marker counts"
    job = started()
    progress = job.on_report({"phase": "train", "step": "x", "total_steps": None, "loss": "nan?",
                              "best_val_bacc": float("nan"), "elapsed_s": "soon"})
    assert (progress.value, progress.maximum, progress.eta) == (0, 1, "") and progress.text == "Training"
    job.on_report({"phase": "train", "step": 5, "total_steps": 2, "loss": 1.5, "elapsed_s": 1.0})
    assert job.on_report({"phase": "train", "step": 6, "total_steps": 2, "elapsed_s": 2.0}).value == 2
    assert job.curve.loss_y == [1.5]


def test_labels_and_plan(tmp_path: Path) -> None:
    labels = {"1.2.3": {"density": 3}, "1.2.4": {"birads": 4}}
    assert worklist_labels(labels, "density") == {"1.2.3": {"density": 3}}
    with pytest.raises(ConfigError, match="no study has your birads"):
        worklist_labels({"1.2.3": {"density": 3}}, "birads")
    with pytest.raises(ConfigError, match="cancer"):
        worklist_labels(labels, "cancer")
    simple, rsna = tmp_path / "labels.csv", tmp_path / "train.csv"
    simple.write_text("study_id,view,birads,density,cancer\n1.2,LCC,1,2,0\n")
    rsna.write_text("site_id,patient_id,image_id,laterality,view,cancer\n1,2,3,L,CC,0\n")
    assert table_inputs("/cases", str(simple)) == ("/cases", str(simple))
    assert table_inputs("/cases", str(rsna)) == (str(rsna), None)
    with pytest.raises(ConfigError, match="choose a table"):
        table_inputs("/cases", "")
    text = plan_text(32, "linear-probe", None)
    assert "32 images" in text and f"{FinetuneConfig().total_steps(0)} training steps" in text
    assert "measured" in text and "5 training steps" in plan_text(32, "lora", 5)
    assert format_duration(30) == "30 s" and format_duration(600) == "10 min" and format_duration(None) == "unknown"


def test_the_stored_runs_are_the_engines_report_format() -> None:
    """The captured lines carry the fields `FinetuneReport.to_json()` writes today (the cancel
    marker's name aside), so a change of the format shows here and the captures get renewed."""
    cancel_names = {"cancelled", "stopped"}
    today = set(FinetuneReport("train").to_json()) - cancel_names
    for path in (LINEAR_PROBE, LORA):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if not row.get("summary"):
                assert set(row) - cancel_names - {"extra"} == today, path.name
