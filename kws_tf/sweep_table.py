"""Gather a sweep's job folders into one table: per (model, C, tag) the mean ± sample std over seeds.

Read per job: report.json (train), export/export_report.json (export), eval/eval_*.json
(evaluate), sweep_result.json (status, wall time). Written: table.json, table.md, table.png
(float and int8 accuracy ± std vs MACs, log x).
"""

from __future__ import annotations

import json
import pathlib
import statistics

from kws_tf import sweep_jobs
from kws_tf.fsutil import atomic_save, atomic_write_bytes, atomic_write_json

# column -> (heading, how it is shown)
METRICS = {
    "params": ("params", "int"),
    "macs": ("MACs", "int"),
    "int8_bytes": ("int8 bytes", "int"),
    "arena_bytes": ("arena bytes", "int"),
    "invoke_ms": ("host invoke ms", "ms"),
    "val_accuracy": ("val acc float %", "pct"),
    "int8_accuracy": ("val acc int8 %", "pct"),
    "eval_accuracy": ("eval acc %", "pct"),
    "job_wall_s": ("job wall s", "s"),
}


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def job_values(model_dir) -> dict:
    """The numbers of one job folder (None where a report is missing)."""
    md = pathlib.Path(model_dir)
    rep = _read_json(md / "report.json") or {}
    exp = _read_json(md / "export" / "export_report.json") or {}
    res = _read_json(md / "sweep_result.json") or {}
    int8 = None
    if exp:
        ev = exp.get("eval") or {}
        int8 = ev.get(f"{exp.get('exported', 'ptq')}_int8_accuracy")
    evals = sorted(md.glob("eval/eval_*.json"))
    ev = _read_json(evals[0]) if evals else None
    return {
        "params": rep.get("params", exp.get("params")),
        "macs": rep.get("macs", exp.get("macs")),
        "int8_bytes": exp.get("int8_bytes"),
        "arena_bytes": exp.get("arena_bytes_min_host"),
        "invoke_ms": exp.get("tflm_invoke_ms_median_host"),
        "val_accuracy": rep.get("val_accuracy"),
        "int8_accuracy": int8,
        "eval_accuracy": ev.get("accuracy") if ev else None,
        "eval_what": f"{evals[0].stem[len('eval_'):]} {ev.get('split')}" if ev else None,
        "job_wall_s": res.get("wall_s"),
        "status": res.get("status"),
        "error": res.get("error"),
        "attempts": len(res.get("attempts", [])),
        "span": [min(a["started"] for a in res["attempts"]), max(a["ended"] for a in res["attempts"])]
        if res.get("attempts") else None,
    }


def mean_std(values) -> dict:
    """{"mean", "std" (sample std; None for one value), "n"} of the non-None values."""
    xs = [float(v) for v in values if v is not None]
    return {"mean": statistics.fmean(xs) if xs else None, "std": statistics.stdev(xs) if len(xs) > 1 else None,
            "n": len(xs)}


def gather(jobs, out, run_wall_s: float | None = None) -> dict:
    """The table of `jobs` (kws_tf.sweep_jobs.Job) from their folders; a job whose training did not
    finish counts as failed (its own error, when it ran under this sweep)."""
    groups: dict = {}
    per_job = []
    for job in jobs:
        vals = job_values(job.model_dir)
        complete = all(sweep_jobs.stage_done(job.model_dir, s) for s in job.stages)
        status = "done" if complete else ("failed" if vals["status"] == "failed" else "missing")
        per_job.append({"job": job.name, "model": job.model, "C": job.channels, "tag": job.tag, "seed": job.seed,
                        "status": status, **{k: vals[k] for k in METRICS}, "attempts": vals["attempts"],
                        "error": vals["error"] if status != "done" else None, "span": vals["span"]})
        groups.setdefault(job.group, []).append((job, vals, status))
    rows = []
    for (model, c, tag), members in groups.items():
        ok = [(job, v) for job, v, s in members if s == "done"]
        row = {"model": model, "C": c, "tag": tag, "seeds": [job.seed for job, _ in ok], "n": len(ok),
               "failed": [job.seed for job, _, s in members if s == "failed"],
               "missing": [job.seed for job, _, s in members if s == "missing"]}
        for key in METRICS:
            row[key] = mean_std(v[key] for _, v in ok)
        whats = {v["eval_what"] for _, v in ok if v["eval_what"]}
        row["eval_what"] = ", ".join(sorted(whats)) or None
        rows.append(row)
    spans = [j["span"] for j in per_job if j["span"]]
    walls = [j["job_wall_s"] for j in per_job if j["job_wall_s"] is not None]
    return {
        "out": str(out),
        "jobs": len(per_job),
        "jobs_done": sum(j["status"] == "done" for j in per_job),
        "jobs_failed": sum(j["status"] == "failed" for j in per_job),
        "jobs_missing": sum(j["status"] == "missing" for j in per_job),
        # first job start to last job end (all attempts, all runs of the sweep)
        "total_wall_s": (max(s[1] for s in spans) - min(s[0] for s in spans)) if spans else None,
        "sum_job_wall_s": sum(walls) if walls else None,
        "run_wall_s": run_wall_s,
        "rows": rows,
        "per_job": per_job,
    }


def _cell(stat: dict, how: str) -> str:
    m, s = stat["mean"], stat["std"]
    if m is None:
        return "–"
    if how == "pct":
        return f"{100 * m:.2f}" + (f" ± {100 * s:.2f}" if s is not None else "")
    if how == "int":
        return f"{m:,.0f}" + (f" ± {s:,.0f}" if s else "")
    if how == "ms":
        return f"{m:.2f}" + (f" ± {s:.2f}" if s is not None else "")
    return f"{m:.0f}" + (f" ± {s:.0f}" if s is not None else "")


def markdown(table: dict) -> str:
    cols = [k for k in METRICS if any(r[k]["mean"] is not None for r in table["rows"])]
    head = ["model", "C", "tag", "n seeds"] + [METRICS[k][0] for k in cols] + ["failed seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        bad = [f"{s} (failed)" for s in r["failed"]] + [f"{s} (not run)" for s in r["missing"]]
        lines.append("| " + " | ".join([r["model"], str(r["C"]), r["tag"] or "–", str(r["n"])]
                                       + [_cell(r[k], METRICS[k][1]) for k in cols]
                                       + [", ".join(bad) or "–"]) + " |")
    out = "\n".join(lines)
    evals = {r["eval_what"] for r in table["rows"] if r["eval_what"]}
    if evals:
        out += f"\n\neval acc: kws_tf.evaluate ({', '.join(sorted(evals))})."
    out += "\n\nmean ± sample std over seeds. "
    out += (f"Jobs: {table['jobs_done']} done, {table['jobs_failed']} failed, {table['jobs_missing']} not run "
            f"of {table['jobs']}. ")
    if table["total_wall_s"] is not None:
        out += f"Total wall {table['total_wall_s']:.0f} s (first job start to last job end); "
    if table["sum_job_wall_s"] is not None:
        out += f"sum of job walls {table['sum_job_wall_s']:.0f} s."
    failed = [j for j in table["per_job"] if j["status"] == "failed"]
    for j in failed:
        out += f"\n- {j['job']} failed after {j['attempts']} attempt(s): {j['error']}"
    return out + "\n"


def plot(table: dict, path) -> None:
    from kws_tf.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for key, marker, what in (("val_accuracy", "o", "float"), ("int8_accuracy", "s", "int8")):
        for r in table["rows"]:
            x, y = r["macs"]["mean"], r[key]["mean"]
            if x is None or y is None:
                continue
            label = f"{r['model']} C={r['C']}" + (f" {r['tag']}" if r["tag"] else "") + f" {what} (n={r['n']})"
            ax.errorbar([x], [100 * y], yerr=[100 * (r[key]["std"] or 0.0)], fmt=marker, capsize=4, label=label,
                        fillstyle="full" if what == "float" else "none")
            drawn = True
    ax.set_xscale("log")
    ax.set_xlabel("MACs per inference (log)")
    ax.set_ylabel("validation accuracy % (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no finished job", transform=ax.transAxes, ha="center")
    ax.set_title("sweep: accuracy vs MACs")
    fig.tight_layout()
    atomic_save(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)


def write(table: dict, out) -> None:
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "table.json", table)
    atomic_write_bytes(out / "table.md", markdown(table).encode())
    plot(table, out / "table.png")
