"""`rlcyclegan report`: a markdown report (tables, plots, translation grids, commands) from experiment results.

    rlcyclegan report --results runs/zero-shot runs/real-data --out results/

Input: experiment folders written by `rlcyclegan experiment` (OUT/results.jsonl, OUT/experiment.json and
the run folders), or results.jsonl files. Output in ``--out``: ``report.md``, ``report.json`` (the
aggregated rows), ``<experiment>-<preset>.png`` plots with 95% intervals and
``<experiment>-<preset>-translations.png`` grids. The markdown holds no timestamps and everything is
ordered, so the same results give the same report, byte for byte.

Aggregation over seeds: "success" is the mean of the seeds' success rates; the interval is the 95%
Wilson interval of all seeds' episodes pooled (successes / episodes); per-seed values keep their own.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcyclegan.data.dataset import wilson_interval
from rlcyclegan.experiments.runner import EXPERIMENT_NAME, RESULTS_NAME, RUNTIME_FIELDS, sort_key
from rlcyclegan.experiments.specs import EXPERIMENTS, METHODS, RECIPES, Ctx, budgets, recipe_from_dict
from rlcyclegan.train.common import write_json_atomic

PAPER_ZERO_SHOT = {"sim-only": 21, "randomized-sim": 37, "gan": 29, "cyclegan": 61, "rl-cyclegan": 70}
"""Real-robot grasp success (%) on unseen objects, Rao et al. 2020, Robot 1 (paper-notes.md). The notes give
no number for a policy trained on the real robot's own data (the Oracle row here)."""
PAPER_REAL_DATA = {0.01: ("5,000", {"real-only": 15, "rl-cyclegan-real": 75}),
                   0.05: ("28,000", {"real-only": 16, "rl-cyclegan-real": 86}),
                   1.0: ("580,000", {"real-only": 87, "rl-cyclegan-real": 94})}
"""Share of the full real data set (580k episodes) -> (episodes, {method: success %}) from the paper."""
PAPER_FINETUNE = {"rl-cyclegan-ft": 94, "rl-cyclegan-joint-ft": 94}
"""RL-CycleGAN fine-tuned with 5k off-policy + 10k on-policy real episodes (the paper, which does not say whether
the GAN trained on during fine-tuning); shown at the largest budget beside both ways of fine-tuning."""
FINETUNE_FROM_RL_CYCLEGAN = ("rl-cyclegan-ft", "rl-cyclegan-joint-ft")
"""The fine-tuning methods that start from RL-CycleGAN (QT-Opt on Q_real alone; the joint training continued)."""
BUDGET_COLUMNS = {"real": "real episodes", "onpolicy": "on-policy episodes"}


class ReportError(ValueError):
    """No results where the report was pointed, or a results file that cannot be read."""


# ===================================================================================== input
@dataclass
class Source:
    """One experiment's results file, its folder (run paths are relative to it) and experiment.json."""

    given: str
    root: Path
    records: list[dict]
    meta: dict


def find_results(paths: Sequence[Path | str]) -> list[Path]:
    """results.jsonl files: the files given, the one in each folder, or those one level below a folder."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif (p / RESULTS_NAME).is_file():
            found.append(p / RESULTS_NAME)
        elif p.is_dir() and sorted(p.glob(f"*/{RESULTS_NAME}")):
            found += sorted(p.glob(f"*/{RESULTS_NAME}"))
        else:
            raise ReportError(f"{p}: no {RESULTS_NAME} there (make one with `rlcyclegan experiment NAME --out {p}`)")
    return found


def load_source(path: Path, given: str) -> Source:
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{path}: not a readable results file ({e})") from e
    if not records:
        raise ReportError(f"{path}: no records yet (no run has finished)")
    missing = [k for k in ("experiment", "method", "seed", "success", "successes", "eval_episodes") if k not in records[0]]
    if missing:
        raise ReportError(f"{path}: records lack {missing}; is this an `rlcyclegan experiment` results file?")
    meta_path = path.parent / EXPERIMENT_NAME
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return Source(given, path.parent, sorted(records, key=sort_key), meta)


# ===================================================================================== aggregation
@dataclass
class Row:
    """One method (at one budget, in one evaluation) over its seeds."""

    experiment: str
    preset: str
    method: str
    label: str
    budget: int | None
    budget_kind: str | None
    eval: str
    records: list[dict]
    source: Source

    @property
    def mean(self) -> float:
        return float(np.mean([r["success"] for r in self.records]))

    @property
    def pooled(self) -> tuple[float, float]:
        return wilson_interval(sum(r["successes"] for r in self.records), sum(r["eval_episodes"] for r in self.records))

    def to_dict(self) -> dict:
        lo, hi = self.pooled
        return {"experiment": self.experiment, "preset": self.preset, "method": self.method, "label": self.label,
                "budget": self.budget, "budget_kind": self.budget_kind, "eval": self.eval, "success": round(self.mean, 6),
                "pooled_low": round(lo, 6), "pooled_high": round(hi, 6), "seeds": [r["seed"] for r in self.records],
                "per_seed": [{"seed": r["seed"], "success": r["success"], "low": r["success_low"], "high": r["success_high"],
                              "episodes": r["eval_episodes"]} for r in self.records],
                "wall_minutes": round(float(np.mean([r["wall_seconds"] for r in self.records])) / 60, 2),
                "real_episodes": int(round(float(np.mean([r["real_episodes"] for r in self.records])))),
                "onpolicy_episodes": int(round(float(np.mean([r["onpolicy_episodes"] for r in self.records]))))}


def rows_of(source: Source) -> list[Row]:
    groups: dict[tuple, list[dict]] = {}
    for r in source.records:
        method = r["method"] + (f"+{r['variant']}" if r.get("variant") else "")  # a --set variant is a method of its own
        groups.setdefault((r["experiment"], r.get("preset", ""), method, r["budget"], r["eval"]), []).append(r)
    rows = [Row(e, p, m, recs[0].get("label", m), b, recs[0].get("budget_kind"), ev, sorted(recs, key=lambda r: r["seed"]), source)
            for (e, p, m, b, ev), recs in groups.items()]
    return sorted(rows, key=lambda row: sort_key(row.records[0]))


def section_key(row: Row) -> tuple:
    exps, presets = list(EXPERIMENTS), list(RECIPES)
    return (exps.index(row.experiment) if row.experiment in exps else len(exps), row.experiment,
            presets.index(row.preset) if row.preset in presets else len(presets), row.preset)


def oracle_row(rows: list[Row], row: Row) -> Row | None:
    """The Oracle of the same preset and env (this experiment's, else the zero-shot one)."""
    cands = [r for r in rows if r.method == "oracle" and r.preset == row.preset and r.records[0].get("train_env") == row.records[0].get("train_env")]
    cands.sort(key=lambda r: (r.experiment != row.experiment, section_key(r)))
    return cands[0] if cands else None


def oracle_success(rows: list[Row], row: Row) -> float | None:
    """Mean success of the Oracle of the same preset and env (this experiment's, else the zero-shot one)."""
    oracle = oracle_row(rows, row)
    return oracle.mean if oracle else None


def paper_value(row: Row, rows: list[Row]) -> int | None:
    if row.experiment == "zero-shot":
        return PAPER_ZERO_SHOT.get(row.method)
    if row.experiment == "real-data" and row.records[0].get("budget_share"):
        share = row.records[0]["budget_share"]
        for frac, (_, values) in PAPER_REAL_DATA.items():
            if abs(share - frac) <= 0.2 * frac:
                return values.get(row.method)
    if row.experiment == "finetune" and row.method in PAPER_FINETUNE:
        largest = max(r.budget or 0 for r in rows if r.method == row.method and r.preset == row.preset and r.experiment == row.experiment)
        return PAPER_FINETUNE[row.method] if row.budget == largest else None
    return None


# ===================================================================================== targets
ZERO_SHOT_ORACLE_SHARE = 0.8
"""Zero-shot target: RL-CycleGAN's success as a share of the Oracle's (the paper's 70% is 0.73-0.74 of its best
real-data result, 94-96%)."""
REAL_DATA_TARGET = (0.10, 0.95)
"""Real-data target: RL-CycleGAN + Real with at most this share of the Oracle's real episodes reaches at least
this share of the Oracle's success."""
MIN_SEEDS = 2
"""Seeds every zero-shot method should have before its ordering counts."""
METHOD_LABELS = {name: m.label for name, m in METHODS.items()}


def recipe_rows(rows: list[Row]) -> dict[str, list[Row]]:
    """The recipe's own rows (no --set variant) by method."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        if "+" not in row.method:
            out.setdefault(row.method, []).append(row)
    return out


def overlap(a: Row, b: Row) -> bool:
    """Whether the two rows' pooled 95% intervals overlap."""
    (alo, ahi), (blo, bhi) = a.pooled, b.pooled
    return alo <= bhi and blo <= ahi


def _figure(row: Row) -> str:
    seeds = len(row.records)
    return f"{row.label} {pct(row.mean)} {interval(*row.pooled)} ({seeds} seed{'s' if seeds != 1 else ''})"


def above(name: str, a: Row | None, b: Row | None, a_name: str = "", b_name: str = "") -> tuple[str, str, str]:
    """Target 'a above b' as (target, verdict, figures); the verdict names a gap inside the intervals."""
    if a is None or b is None:
        missing = [n for n, r in ((a_name, a), (b_name, b)) if r is None]
        return name, "not run yet", "no results for " + " and ".join(missing)
    verdict = ("met" if a.mean > b.mean else "missed") + (", inside the intervals" if overlap(a, b) else "")
    return name, verdict, f"{_figure(a)} vs {_figure(b)}"


def zero_shot_targets(rows: list[Row], all_rows: list[Row]) -> list[tuple[str, str, str]]:
    """The paper's zero-shot ordering on this benchmark, RL-CycleGAN's share of the Oracle, and the seed count."""
    by = {m: rs[0] for m, rs in recipe_rows(rows).items()}
    out = []
    sim_only, others = by.get("sim-only"), [r for m, r in by.items() if m not in ("sim-only", "oracle")]
    if sim_only is None or not others:
        out.append(("Sim-only lowest", "not run yet", "needs Sim-only and another method"))
    else:
        lowest = min(others, key=lambda r: r.mean)
        _, verdict, _ = above("", lowest, sim_only)
        out.append(("Sim-only lowest", verdict, f"{_figure(sim_only)}; the lowest other: {_figure(lowest)}"))
    for a, b in (("cyclegan", "gan"), ("cyclegan", "randomized-sim"), ("rl-cyclegan", "cyclegan")):
        out.append(above(f"{METHOD_LABELS[a]} above {METHOD_LABELS[b]}", by.get(a), by.get(b), METHOD_LABELS[a], METHOD_LABELS[b]))
    rl = by.get("rl-cyclegan")
    oracle = oracle_success(all_rows, rl) if rl is not None else None
    name = f"RL-CycleGAN >= {ZERO_SHOT_ORACLE_SHARE:g} of the Oracle"
    if rl is None or not oracle:
        out.append((name, "not run yet", "needs RL-CycleGAN and the Oracle"))
    else:
        share = rl.mean / oracle
        out.append((name, "met" if share >= ZERO_SHOT_ORACLE_SHARE else "missed", f"{share:.2f} ({pct(rl.mean)} of {pct(oracle)})"))
    few = sorted(f"{r.label} ({len(r.records)})" for r in by.values() if len(r.records) < MIN_SEEDS)
    out.append((f">= {MIN_SEEDS} seeds per method", "met" if not few else "missed",
                "fewer: " + ", ".join(few) if few else "every method has " + ", ".join(sorted({str(len(r.records)) for r in by.values()})) + " seeds"))
    return out


def real_data_targets(rows: list[Row], all_rows: list[Row]) -> list[tuple[str, str, str]]:
    """RL-CycleGAN + Real with a small share of the Oracle's real data against the Oracle, then RL-CycleGAN + Real
    against Real-only and Sim+Real at each budget they share."""
    extension = [small_budget_target(rows, all_rows, "rl-cyclegan-real-camera")] if recipe_rows(rows).get("rl-cyclegan-real-camera") else []
    return [small_budget_target(rows, all_rows)] + extension + budget_order(rows, "rl-cyclegan-real", ("real-only", "sim-real"), "real episodes")


def small_budget_target(rows: list[Row], all_rows: list[Row], method: str = "rl-cyclegan-real") -> tuple[str, str, str]:
    """The share is of every real episode the Oracle used (its records' ``real_episodes``: the off-policy pool and
    the on-policy episodes it collected), not of the pool alone (the records' ``budget_share``). The target is the
    paper's method's (rl-cyclegan-real); ``method`` checks another real-data method the same way (the two-stage
    rl-cyclegan-real-camera, named as such in the line)."""
    max_share, min_of_oracle = REAL_DATA_TARGET
    who = METHOD_LABELS[method] + ("" if method == "rl-cyclegan-real" else " (an extension beyond the paper)")
    name = f"{who} with <= {max_share:.0%} of the Oracle's real episodes reaches >= {min_of_oracle:g} of the Oracle"
    runs = [r for r in recipe_rows(rows).get(method, []) if r.budget]
    oracle = oracle_row(all_rows, runs[0]) if runs else None
    if not runs or oracle is None:
        return name, "not run yet", ("no Oracle of this preset among the report's results (`experiment zero-shot --only oracle`)" if runs
                                     else f"no {METHOD_LABELS[method]} run")
    used = max(int(rec.get("real_episodes") or 0) for rec in oracle.records)
    small = [r for r in runs if used and r.budget / used <= max_share + 1e-9]
    if not small:
        return name, "not run yet", f"no {METHOD_LABELS[method]} run at <= {max_share:.0%} of the Oracle's {used:,} real episodes"
    best = max(small, key=lambda r: r.mean)
    figures = "; ".join(f"{r.budget:,} episodes ({r.budget / used:.1%} of the Oracle's {used:,}): {pct(r.mean)} {interval(*r.pooled)}, "
                        f"{r.mean / oracle.mean:.2f} of the Oracle's {pct(oracle.mean)}" for r in sorted(small, key=lambda r: r.budget or 0))
    return name, "met" if best.mean >= min_of_oracle * oracle.mean else "missed", figures


def budget_order(rows: list[Row], method: str, others: tuple[str, ...], unit: str) -> list[tuple[str, str, str]]:
    """``method`` above each of ``others`` at every budget they share (the paper's comparison at equal data)."""
    by = recipe_rows(rows)
    out = []
    for other in others:
        mine = {r.budget: r for r in by.get(method, [])}
        theirs = {r.budget: r for r in by.get(other, [])}
        for budget in sorted(set(mine) & set(theirs), key=lambda b: b or 0):
            out.append(above(f"{METHOD_LABELS[method]} above {METHOD_LABELS[other]} at {budget or 0:,} {unit}",
                             mine[budget], theirs[budget]))
    return out


def finetune_targets(rows: list[Row], all_rows: list[Row]) -> list[tuple[str, str, str]]:
    """Fine-tuning from RL-CycleGAN's policy above fine-tuning from Sim-only's and from scratch, at equal budgets;
    then above its own start, RL-CycleGAN zero-shot, at each budget (fine-tuning that loses success is reported)."""
    out = []
    by = recipe_rows(rows)
    start = by.get("rl-cyclegan", [None])[0]
    for method in FINETUNE_FROM_RL_CYCLEGAN:
        out += budget_order(rows, method, ("sim-only-ft", "scratch-ft"), "on-policy episodes")
        for row in sorted(by.get(method, []), key=lambda r: r.budget or 0):
            out.append(above(f"{METHOD_LABELS[method]} at {row.budget or 0:,} on-policy episodes above its start "
                             f"({METHOD_LABELS['rl-cyclegan']}, zero-shot)", row, start, b_name=METHOD_LABELS["rl-cyclegan"]))
    return out


def multibin_targets(rows: list[Row], all_rows: list[Row]) -> list[tuple[str, str, str]]:
    """The paper's Robot 2: single-bin and multi-bin success are similar (here: inside each other's intervals)."""
    out = []
    for method, rs in recipe_rows(rows).items():
        evals = {r.eval: r for r in rs}
        if {"single-bin", "multi-bin"} <= set(evals):
            single, multi = evals["single-bin"], evals["multi-bin"]
            out.append((f"{METHOD_LABELS.get(method, method)}: single-bin and multi-bin similar",
                        "met" if overlap(single, multi) else "missed",
                        f"single-bin {pct(single.mean)} {interval(*single.pooled)}, multi-bin {pct(multi.mean)} {interval(*multi.pooled)}"))
    return out


TARGETS = {"zero-shot": zero_shot_targets, "real-data": real_data_targets, "finetune": finetune_targets,
           "multibin": multibin_targets}
"""Experiment -> the checks of its targets (on the recipe's rows; --set variants are ablations)."""


def targets_table(rows: list[Row], all_rows: list[Row]) -> list[str]:
    """Markdown table of the section's targets, or nothing for an experiment without any."""
    check = TARGETS.get(rows[0].experiment)
    if check is None:
        return []
    found = check(rows, all_rows)
    if not found:
        return []
    lines = ["Targets (the paper's ordering and this project's goals, checked on the recipe's runs; a gap inside the "
             "95% intervals is named):", "", "| target | result | figures |", "|---|---|---|"]
    return lines + [f"| {t} | {v} | {f} |" for t, v, f in found]


def missing_runs(rows: list[Row]) -> list[str]:
    """Markdown bullets: the runs of the recipe (each method of the experiment at each of its budgets, seeds
    0..MIN_SEEDS-1) that the section's results lack; nothing when all are there or no recipe was recorded."""
    first = rows[0]
    meta = next((row.source.meta for row in rows if row.source.meta.get("recipe")), None)
    if first.experiment not in EXPERIMENTS or meta is None:
        return []
    try:
        recipe = recipe_from_dict(meta["recipe"])
    except (TypeError, ValueError):
        return []  # written by another version of the recipe: nothing to plan against
    exp = EXPERIMENTS[first.experiment]
    ctx = Ctx(first.experiment, first.preset, recipe, Path("."), exp.env, seed=0)
    have = {(row.method, row.budget, r["seed"]) for row in rows if "+" not in row.method for r in row.records}
    lines = []
    for name in exp.methods:
        method = METHODS[name]
        gaps = []
        for budget in budgets(ctx, method):
            seeds = [s for s in range(MIN_SEEDS) if (name, budget, s) not in have]
            if seeds:
                where = f"{budget:,} {BUDGET_COLUMNS[method.budget]}: " if budget is not None else ""
                gaps.append(where + "seed" + ("s " if len(seeds) > 1 else " ") + ", ".join(map(str, seeds)))
        if gaps:
            lines.append(f"- {method.label}: " + "; ".join(gaps))
    if not lines:
        return []
    return ([f"Not in these results yet (the recipe's methods at each of its budgets, seeds 0-{MIN_SEEDS - 1}; "
             f"`rlcyclegan experiment {first.experiment} --preset {first.preset} --seeds {MIN_SEEDS}` runs what is missing):", ""]
            + lines)


# ===================================================================================== markdown
def machines_lines(src: Source) -> list[str]:
    """Which machine trained each run (the one that finished each stage, from its done.json), as a short list."""
    from rlcyclegan.train.common import describe_machine

    by_machine: dict[str, list[str]] = {}
    unknown: list[str] = []
    for rec in src.records:
        run = rec["run"].split("/")[-1]
        machines = rec.get("machines") or {}
        if not machines:
            unknown.append(run)
        for info in machines.values():
            by_machine.setdefault(describe_machine(info), []).append(run)
    lines = ["Machines that trained the runs (each stage's, as its `done.json` recorded it):", ""]
    for desc, runs in by_machine.items():
        runs = list(dict.fromkeys(runs))
        lines.append(f"- {desc}: {len(runs)} run(s) ({', '.join(runs)})")
    if unknown:
        unknown = list(dict.fromkeys(unknown))
        lines.append(f"- not recorded: {len(unknown)} run(s) finished before runs recorded their machine ({', '.join(unknown)})")
    return lines + [""]


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def interval(lo: float, hi: float) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def table(rows: list[Row], all_rows: list[Row]) -> list[str]:
    kind = next((r.budget_kind for r in rows if r.budget_kind), None)
    evals = sorted({r.eval for r in rows}) != ["real"]
    head = ["method"] + ([BUDGET_COLUMNS[kind]] if kind else []) + (["evaluation"] if evals else []) + [
        "success (mean of seeds)", "95% CI (seeds pooled)", "per seed: success [95% CI]", "of Oracle", "paper",
        "wall min (train + eval, per seed)", "real episodes used"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        oracle = oracle_success(all_rows, row)
        paper = paper_value(row, all_rows)
        d = row.to_dict()
        cells = [row.label] + ([f"{row.budget:,}" if row.budget is not None else "0 (no budget)"] if kind else []) + ([row.eval] if evals else []) + [
            pct(row.mean), interval(*row.pooled),
            "; ".join(f"s{r['seed']} {pct(r['success'])} {interval(r['success_low'], r['success_high'])}" for r in row.records),
            (pct(row.mean / oracle) if oracle else "— (Oracle 0%)" if oracle == 0 else "—"), (f"{paper}%" if paper is not None else "—"),
            f"{d['wall_minutes']:.1f}", f"{d['real_episodes']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _avg(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def iou_cell(ts: list[dict], key: str = "g_vs_real") -> str:
    """The object IoU of translation records (mean of seeds), with its bootstrap interval when there is one seed."""
    ms = [((t.get("object_segmentation") or {}).get(key) or {}) for t in ts]
    iou = _avg([m.get("iou") for m in ms])
    if iou is None:
        return "—"
    if len(ms) == 1 and ms[0].get("iou_low") is not None:
        return f"{iou:.3f} [{ms[0]['iou_low']:.3f}, {ms[0]['iou_high']:.3f}]"
    return f"{iou:.3f}"


def translation_table(rows: list[Row]) -> list[str]:
    """Each generator's translation metrics against the paired real renders (mean of seeds), one line per method
    (and budget), and the untranslated sim render as the reference line; [] when no record carries them."""
    rows = [r for r in rows if all("translation" in rec for rec in r.records)]
    seen, lines = set(), []
    for row in rows:
        if (row.method, row.budget) in seen:
            continue
        seen.add((row.method, row.budget))
        ts = [rec["translation"] for rec in row.records]

        def avg(*keys: str) -> float | None:
            vals = []
            for t in ts:
                v = t
                for k in keys:
                    v = v.get(k) if isinstance(v, dict) else None
                vals.append(v)
            return _avg(vals)

        label = row.label + (f" ({row.budget:,})" if row.budget is not None else "")
        lines.append([label, _num(avg("g_vs_real", "psnr_object"), ".2f"), _num(avg("g_vs_real", "ssim_object"), ".3f"),
                      iou_cell(ts), _num(avg("g_vs_real", "psnr"), ".2f"), _num(avg("g_vs_real", "ssim"), ".3f"),
                      _num(avg("own_fid", "g_vs_real"), ".2f"), _num(avg("f_vs_sim", "psnr_object"), ".2f"),
                      _num(avg("q_consistency", "mean_abs_diff"), ".3f")])
    if not lines:
        return []
    t0 = rows[0].records[0]["translation"]
    ref, seg = t0["sim_vs_real"], t0.get("object_segmentation") or {}
    lines.append(["no translation (sim render x)", _num(ref.get("psnr_object"), ".2f"), _num(ref.get("ssim_object"), ".3f"),
                  iou_cell([t0], "sim_vs_real"), _num(ref.get("psnr"), ".2f"), _num(ref.get("ssim"), ".3f"), _num(t0["own_fid"].get("sim_vs_real"), ".2f"), "—", "—"])
    if seg:
        lines.append(["the real render y itself (segmenter ceiling)", "—", "—", iou_cell([t0], "real"), "—", "—", "—", "—", "—"])
    head = ["generator", "PSNR dB, object pixels", "SSIM, object pixels", "object IoU (segmenter)", "PSNR dB", "SSIM", "own-feature FID",
            "F(y) vs sim: PSNR dB, object pixels", "\\|Q_sim(x,a) − Q_real(G(x),a)\\|"]
    return ([f"Translation of paired renders: G(x) against the real render of the same state, {t0['images']} images from "
             f"{t0['episodes']} scripted episodes with unseen objects (`rlcyclegan eval-translation`; mean of seeds). Higher "
             "PSNR on object pixels is a lower object-pixel error. Object IoU: a small segmenter trained on real renders "
             "and their object masks (other episodes) marks objects in G(x), scored against the real render's mask; "
             "unlike object-pixel PSNR it does not ask G to guess an unseen object's real colour and texture. The FID is computed on the features of a small "
             "sim-vs-real classifier this project trains on other renders: not comparable to Inception FID. The last "
             "column is the RL-scene consistency on the logged actions (Q-networks only RL-CycleGAN has).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(cells) + " |" for cells in lines])


def stage_command(kind: str, config: dict, preset: str) -> str:
    """`rlcyclegan train KIND --preset P --field value ...` for the fields that differ from the preset."""
    from rlcyclegan.train import qtopt as qt
    from rlcyclegan.train import rlcyclegan as rc
    from rlcyclegan.train.common import to_jsonable

    base = to_jsonable((qt if kind == "qtopt" else rc).preset_config(preset))
    parts = ["rlcyclegan", "train", kind, "--preset", preset]
    for k in base:
        v = config.get(k, base[k])
        if k in RUNTIME_FIELDS[:3] or (v == base[k] and k not in ("out", "name")):
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts.append(flag if v else "--no-" + k.replace("_", "-"))
        elif v is None:
            parts += [flag, "None"]
        elif isinstance(v, list):
            parts += [flag, *map(str, v)]
        else:
            parts += [flag, str(v)]
    return shlex.join(parts)


def commands_section(sections: list[tuple[tuple, list[Row]]]) -> list[str]:
    lines = ["## How these results were made", ""]
    sources: list[Source] = []
    for _, rows in sections:
        for row in rows:
            if all(row.source is not s for s in sources):
                sources.append(row.source)
    for src in sources:
        lines += [f"Results `{src.given}`; the experiment commands run into it:", "", "```bash",
                  *src.meta.get("commands", ["(no experiment.json)"]), "```", ""]
        lines += machines_lines(src)
        recipe = src.meta.get("recipe", {})
        lines += ["Training stages of each method (its first seed; every run keeps its full config in RUN/STAGE/config.json, "
                  "and the results give each run's config hash). Paths are as the experiment wrote them:", ""]
        done: set[tuple] = set()
        for row in rows_of(src):
            key = (row.method, row.budget)
            if key in done:
                continue
            done.add(key)
            rec = row.records[0]
            budget = f", budget {row.budget:,}" if row.budget is not None else ""
            if rec.get("acting") == "both":
                lines.append(f"- **{row.label}**{budget}: the same runs as the line without acting=both, their policy "
                             f"evaluated as `rlcyclegan eval --checkpoint {rec['policy']}/final.pt --q-network both` (Q_real(y) and "
                             f"Q_sim(F(y)), mean logit; domain, objects, episodes and CEM as for the other rows)")
                continue
            lines.append(f"- **{row.label}**{budget}, seed {rec['seed']} (`{rec['run']}`, config hash `{rec['config_hash']}`):")
            for stage in rec.get("stages", sorted(rec.get("steps", {}))):
                cfg_path = src.root / rec["run"] / stage / "config.json"
                if not cfg_path.exists():
                    lines.append(f"  - `{stage}`: config not found at {rec['run']}/{stage}/config.json")
                    continue
                cfg = json.loads(cfg_path.read_text())
                kind = "qtopt" if "offline_episodes" in cfg else "rlcyclegan"
                preset = recipe.get(f"{kind}_preset", "cpu")
                ran, want = rec["steps"][stage], cfg.get("steps")
                steps = f"{ran} steps" if want is None or ran >= want else \
                    f"**{ran} of {want} steps: stopped by its max_minutes={cfg.get('max_minutes')} limit**"
                lines.append(f"  - `{stage}` ({steps}): `{stage_command(kind, cfg, preset)}`")
        lines.append("")
    return lines


# ===================================================================================== plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)
    os.replace(tmp, path)


def bar_plot(rows: list[Row], path: Path, title: str) -> None:
    """Success of each method (and evaluation) with pooled 95% intervals; the paper's numbers as red marks."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1), 3.8))
    x = np.arange(len(rows))
    means = np.array([r.mean for r in rows])
    lo = np.array([r.pooled[0] for r in rows])
    hi = np.array([r.pooled[1] for r in rows])
    ax.bar(x, means, color="C0", alpha=0.8)
    ax.errorbar(x, means, yerr=[means - lo, hi - means], fmt="none", ecolor="k", capsize=3)
    papers = [(i, paper_value(r, rows)) for i, r in enumerate(rows)]
    pts = [(i, v / 100) for i, v in papers if v is not None]
    if pts:
        ax.plot(*zip(*pts), "rx", ms=8, label="paper (real robot)")
        ax.legend(fontsize=8)
    ax.set_xticks(x, [r.label + ("" if r.eval == "real" else f"\n{r.eval}") for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("grasp success in real (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def curve_plot(rows: list[Row], path: Path, title: str, kind: str, oracle: Row | None = None,
               target_share: float | None = None) -> list[str]:
    """Success against the budget (real episodes on a log axis, or on-policy episodes) with pooled 95% intervals;
    methods without a budget are drawn as horizontal lines (fine-tuning curves start from their base run at 0).
    With an Oracle row, its success is a dotted line, and `target_share` of it a dash-dot target line. Returns the
    legend's labels."""
    plt = _pyplot()
    curves = [m for m in dict.fromkeys(r.method for r in rows if r.budget is not None)]
    flat = [r for r in rows if r.budget is None]
    entries = len(curves) + len(flat) + (0 if oracle is None else 1 + (target_share is not None))
    # The legend sits below the axes so that many variants never hide the curves; the figure grows with it.
    fig, ax = plt.subplots(figsize=(6.4, 4.0 + 0.19 * entries))
    for i, method in enumerate(curves):
        pts = [r for r in rows if r.method == method and r.budget is not None]
        start = [r for r in flat if kind == "onpolicy" and method == f"{r.method}-ft"]
        pts = start + pts
        xs = np.array([0 if r.budget is None else r.budget for r in pts], dtype=float)
        ax.plot(xs, [r.mean for r in pts], "o-", color=f"C{i}", label=pts[-1].label, ms=4)
        ax.fill_between(xs, [r.pooled[0] for r in pts], [r.pooled[1] for r in pts], color=f"C{i}", alpha=0.15, lw=0)
    for j, r in enumerate(flat):
        ax.axhline(r.mean, color=f"C{len(curves) + j}", ls="--", lw=1, label=f"{r.label} (no {BUDGET_COLUMNS[kind]})")
    if oracle is not None:
        ax.axhline(oracle.mean, color="k", ls=":", lw=1.2, label=f"Oracle ({pct(oracle.mean)}, trained in real)")
        if target_share is not None:
            ax.axhline(target_share * oracle.mean, color="0.45", ls="-.", lw=1,
                       label=f"target: {target_share:g} of the Oracle")
    if kind == "real":
        ax.set_xscale("log")
    ax.set_xlabel(BUDGET_COLUMNS[kind] + (" (log scale)" if kind == "real" else ""))
    ax.set_ylabel("grasp success in real (95% CI)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend = ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    labels = [t.get_text() for t in legend.get_texts()]
    fig.tight_layout()
    _save(fig, path)
    return labels


def cem_text(cem: dict | None) -> str:
    """How a record's policy chose its actions, e.g. "CEM 3x256 (12 elites)"."""
    if not cem:
        return "their checkpoint's CEM"  # records written before eval_cem existed
    return f"CEM {cem['iterations']}x{cem['samples']} ({cem['elites']} elites)"


def translation_grid(rows: list[Row], path: Path, states: int = 4) -> tuple[Path | None, list[str]]:
    """Sim states (unseen objects), each method's G(sim) and the paired real render, one state per row.
    Returns (the grid or None, notes about methods left out)."""
    from rlcyclegan.data.grid import save_grid
    from rlcyclegan.envs.render import paired_states
    from rlcyclegan.rl.checkpoint import CheckpointError
    from rlcyclegan.rl.translate import ImageTranslator

    gens, notes, seen = [], [], set()
    for row in rows:
        rec = row.records[0]
        if not rec.get("generator") or rec.get("acting") or (row.method, row.budget) in seen:  # acting=both: the same G
            continue
        seen.add((row.method, row.budget))
        label = row.label + (f" ({row.budget:,})" if row.budget is not None else "")
        try:
            gens.append((label, ImageTranslator.load(row.source.root / rec["generator"])))
        except CheckpointError as e:
            notes.append(f"{label}: no generator ({e})")
    if not gens:
        return None, notes
    rec = rows[0].records[0]
    env, size = rec.get("train_env", "rlcyclegan/Grasp-v0"), int(rec.get("image_size", 64))
    renders = list(paired_states(env, ("sim", "real"), states, size, "test", 0))
    sims = np.stack([r["sim"]["image"] for r in renders])
    cols = [sims] + [t(sims) for _, t in gens] + [np.stack([r["real"]["image"] for r in renders])]
    grid = [[c[i] for c in cols] for i in range(len(renders))]
    labels = ["sim"] + [f"G: {label}" for label, _ in gens] + ["real (same state)"]
    save_grid(path, grid, col_labels=labels, scale=max(1, 128 // size))
    return path, notes


# ===================================================================================== the report
def write_report(results: Sequence[Path | str], out: Path | str, grids: bool = True) -> Path:
    """Write OUT/report.md (+ report.json, plots, translation grids) from the results; returns the markdown's path."""
    out = Path(out)
    files = find_results(results)
    sources = [load_source(f, str(f)) for f in files]
    all_rows = [row for src in sources for row in rows_of(src)]
    sections: dict[tuple, list[Row]] = {}
    for row in sorted(all_rows, key=section_key):
        sections.setdefault(section_key(row), []).append(row)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Experiment results", "",
          "Made by `rlcyclegan report` from " + ", ".join(f"`{s.given}`" for s in sources) + ".",
          "Success is the greedy grasp success of each run's policy in the `real` domain of the benchmark on unseen "
          "(test) objects. *success* is the mean over seeds; its interval is the 95% Wilson interval of all seeds' "
          "episodes pooled; per-seed values carry their own interval. *of Oracle*: the mean success as a share of the "
          "Oracle's (QT-Opt trained in `real` with all the real data and on-policy real episodes, same preset). "
          "*paper*: real-robot success from Rao et al. (CVPR 2020) on unseen objects: another robot, scale and data "
          "budget, so compare orderings and gaps rather than values. *wall*: training (data collection shared by "
          "all runs excluded) plus evaluation, per seed, of the run's own stages.", ""]
    for key, rows in sections.items():
        exp, preset = rows[0].experiment, rows[0].preset
        title = EXPERIMENTS[exp].title if exp in EXPERIMENTS else exp
        seeds = sorted({r["seed"] for row in rows for r in row.records})
        episodes = sorted({r["eval_episodes"] for row in rows for r in row.records})
        cems = sorted({cem_text(r.get("eval_cem")) for row in rows for r in row.records})
        stem = f"{exp}-{preset}"
        md += [f"## {title} (`{exp}`, preset `{preset}`)", "",
               f"Seeds {', '.join(map(str, seeds))}; {', '.join(map(str, episodes))} evaluation episodes per run; "
               f"the policies act with {' / '.join(cems)}.", ""]
        md += table(rows, all_rows) + [""]
        targets = targets_table(rows, all_rows)
        md += targets + ([""] if targets else [])
        missing = missing_runs(rows)
        md += missing + ([""] if missing else [])
        kind = next((r.budget_kind for r in rows if r.budget_kind), None)
        if exp == "real-data":
            md += ["Paper (real robot): " + "; ".join(f"{n} real episodes ({frac:.0%} of all): Real-only {v['real-only']}%, "
                                                       f"RL-CycleGAN + Real {v['rl-cyclegan-real']}%" for frac, (n, v) in PAPER_REAL_DATA.items())
                   + ". Rows whose budget is 1%, 5% or 100% of the off-policy real pool (the paper's 580,000 episodes; here the pool the recipe's budgets are fractions of, which the Oracle learns from besides its on-policy episodes) show these.", ""]
        if exp == "finetune":
            md += ["Paper: RL-CycleGAN fine-tuned with 5k off-policy and 10k on-policy real episodes reached 94% "
                   "(shown at the largest on-policy budget).", ""]
        if exp == "zero-shot":
            md += ["The notes this project keeps on the paper give no real-robot number for a policy trained on the "
                   "robot's own data alone at the Oracle's budget, so the Oracle row has no paper value.", ""]
        if kind:
            oracle = next((o for o in (oracle_row(all_rows, r) for r in rows) if o is not None), None)
            curve_plot(rows, out / f"{stem}.png", f"{title} (preset {preset})", kind, oracle,
                       REAL_DATA_TARGET[1] if exp == "real-data" else None)
        else:
            bar_plot(rows, out / f"{stem}.png", f"{title} (preset {preset})")
        md += [f"![{title}]({stem}.png)", ""]
        trans = translation_table(rows)
        if trans:
            md += trans + [""]
        if grids:
            grid, notes = translation_grid(rows, out / f"{stem}-translations.png")
            if grid is not None:
                md += ["Translations of the same sim states (unseen objects) by each method's generator G (first seed), "
                       "next to the real render of the same state:", "", f"![translations]({grid.name})", ""]
            md += [f"- {n}" for n in notes] + ([""] if notes else [])
    md += commands_section(list(sections.items()))
    path = out / "report.md"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(md).rstrip("\n") + "\n")
    os.replace(tmp, path)
    write_json_atomic(out / "report.json", {"sources": [s.given for s in sources], "rows": [r.to_dict() for r in all_rows]})
    return path
