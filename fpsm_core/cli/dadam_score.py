"""``fpsm dadam score``: patch efficacy under a model, and the efficacy hooks of the other steps.

``score`` composes every usable patch (or ``--patch`` ids) ``--per-patch`` times onto images without
its finding and stores the mean rise of the class probability, its interval and the in-box CAM
energy in the library (:mod:`fpsm_core.dadam.efficacy`). The hooks give ``library --list --json``
each patch's scores, ``plan --min-efficacy`` its patch filter, and ``report --library`` its
efficacy table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fpsm_core.cli.options import number, whole


def register_score(sub: Any) -> None:
    sc = sub.add_parser(
        "score",
        help="patch efficacy: does pasting a patch raise the model's probability of its class?",
    )
    sc.add_argument("library", type=Path, help="the patch library folder")
    sc.add_argument("--model", type=Path, required=True, help="checkpoint .json or ensemble folder")
    src = sc.add_argument_group("images (one of them, or both: --images is the CSV's root)")
    src.add_argument("--images", type=Path, help="folder of images to paste onto")
    src.add_argument("--labels", type=Path, help="labels CSV of the images (CXR-LT layout)")
    sc.add_argument(
        "--per-patch", type=whole(1, 1000), default=8, help="compositions per patch (default 8)"
    )
    sc.add_argument("--seed", type=whole(0), default=0, help="seed (default 0)")
    sc.add_argument("--patch", type=int, nargs="+", metavar="ID", help="only these patches")
    sc.add_argument(
        "--accepted-only", action="store_true", help="accepted patches only (default: not rejected)"
    )
    sc.add_argument("--workers", type=whole(1, 64), help="CPU threads of the forward passes")
    sc.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, mps")
    sc.add_argument(
        "--lung",
        default="estimate",
        choices=("estimate", "template"),
        help="where pasted lung findings may go: the estimated lung field (default) or the template",
    )
    sc.add_argument("--json", action="store_true", help="one JSON object per scored patch")


def _errors() -> tuple[type[BaseException], ...]:
    from fpsm_core.errors import FpsmError

    return (FpsmError,)


def _fail(exc: BaseException) -> Any:
    from fpsm_core.cli.main import CLIError

    return CLIError(str(exc).rstrip(".") + ".")


def _bar(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="patch", dynamic_ncols=True)


def add_plan_options(pl: Any) -> None:
    pl.add_argument(
        "--min-efficacy",
        type=number(-1.0, 1.0),
        help="use only patches whose stored efficacy is at least this (fpsm dadam score)",
    )
    pl.add_argument(
        "--efficacy-model", help="whose efficacy: a scored model's name or id (default: the only)"
    )


def run_score(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.efficacy import score_patches

    if args.images is None and args.labels is None:
        raise _fail(ValueError("give the images to score on: --images DIR or --labels CSV"))
    states = ("accepted",) if args.accepted_only else ("unreviewed", "accepted")
    bars: list[Any] = []  # made at the first patch, so an early error stays one line

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(_bar(total, "score"))
        if bars[0] is not None:
            bars[0].update(done - bars[0].n)

    try:
        try:
            rep = score_patches(
                args.library, args.model, images=args.images, labels_csv=args.labels,
                per_patch=args.per_patch, seed=args.seed, patch_ids=args.patch, states=states,
                workers=args.workers, device=args.device, lung=args.lung, progress=progress,
            )  # fmt: skip
        finally:
            if bars and bars[0] is not None:
                bars[0].close()
    except _errors() as exc:
        raise _fail(exc) from None
    if args.json:
        for s in rep.scored:
            print(json.dumps({"id": s.patch_id, "label": s.label, **s.to_json()}))
    else:
        print(f"{'id':>7}  {'label':<26}{'efficacy':>9}  {'95% interval':<19}{'energy':>7}  level")
        for s in rep.scored:
            energy = "-" if s.energy is None else f"{s.energy:.3f}"
            print(f"{s.patch_id:>7}  {s.label:<26}{s.efficacy:>+9.4f}  "
                  f"[{s.lo:+.4f}, {s.hi:+.4f}]  {energy:>7}  {s.best_level or '-'}")  # fmt: skip
    rate = rep.patches_per_second
    print(
        f"{len(rep.scored)} patches scored ({rate:.2f}/s), {len(rep.skipped)} already scored, "
        f"{len(rep.failed)} failed; model {rep.model.name} ({rep.model.id[:8]}), seed {args.seed}",
        file=sys.stderr if args.json else None,
    )
    for line in rep.failed[:10]:
        print(f"  failed: {line}", file=sys.stderr)
    return 0


def efficacy_records(lib: Any, ids: Sequence[int]) -> Mapping[int, list[dict[str, Any]]]:
    """Each patch's stored scores as ``--list --json`` prints them (newest first)."""
    from fpsm_core.dadam.efficacy import stored_scores

    return {pid: [s.to_json() for s in ss] for pid, ss in stored_scores(lib, ids).items()}


def efficacy_patches(lib: Any, args: argparse.Namespace, states: Sequence[str]) -> Any:
    """``plan --min-efficacy``: label -> usable patches at or above the threshold (or the library)."""
    if args.min_efficacy is None:
        if args.efficacy_model:
            from fpsm_core.cli.main import CLIError

            raise CLIError("--efficacy-model needs --min-efficacy.")
        return lib
    from fpsm_core.dadam.efficacy import filter_by_efficacy, latest_scores

    scores = latest_scores(lib, args.efficacy_model)
    kept, below, unscored = filter_by_efficacy(
        lib.patches(None, states=states), scores, args.min_efficacy
    )
    print(f"efficacy >= {args.min_efficacy}: {len(kept)} patches kept, {below} below, "
          f"{unscored} not scored by that model (left out)", file=sys.stderr)  # fmt: skip
    by_label: dict[str, list[Any]] = {}
    for p in kept:
        by_label.setdefault(p.label, []).append(p)
    return by_label


def report_efficacy(library: Path | None, out: Path) -> None:
    """``report --library``: the efficacy summary into ``efficacy.json`` and ``report.md``."""
    if library is None:
        return
    from fpsm_core.dadam.efficacy import efficacy_summary
    from fpsm_core.dadam.library import PatchLibrary

    with PatchLibrary(library, create=False) as lib:
        summary = efficacy_summary(lib)
    (out / "efficacy.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    lines = ["", "## Patch efficacy", ""]
    if not summary:
        lines.append("No patch of this library has been scored (`fpsm dadam score`).")
    for model, per_class in summary.items():
        lines += [f"Model {model}:", "", "| class | patches | mean efficacy | interval > 0 | "
                  "mean in-box energy |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for label, row in per_class.items():
            lines.append(
                f"| {label} | {row['patches']} | {row['mean_efficacy']:+.4f} | "
                f"{100 * row['positive_share']:.0f} % | {row['mean_energy']:.3f} |"
            )
        lines.append("")
    md = out / "report.md"
    with md.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    for model, per_class in summary.items():
        print(f"efficacy ({model}): " + ", ".join(
            f"{k} {v['mean_efficacy']:+.3f} ({v['patches']})" for k, v in per_class.items()
        ))  # fmt: skip
    print(f"efficacy: {out / 'efficacy.json'}")
