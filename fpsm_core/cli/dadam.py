"""``fpsm dadam``: the DADAM patch library, plans, augmented data sets and reports.

Subcommands follow the pipeline: ``import`` (boxes -> patch library; also COCO / YOLO / VOC),
``library`` (counts, curation, ``--list [--json]``), ``export`` (COCO / YOLO / VOC), ``cooc`` (correlation matrix and partners of a labels CSV), ``plan`` (targets -> JSONL
manifest), ``generate`` (manifest -> augmented data set, resumable), ``report`` (counts and
co-occurrence before/after, PNG + markdown), ``score`` (patch efficacy under a model, in
``fpsm_core.cli.dadam_score``). Every user mistake ends as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fpsm_core.cli.dadam_score import (
    add_plan_options,
    efficacy_patches,
    efficacy_records,
    register_score,
    report_efficacy,
    run_score,
)
from fpsm_core.cli.options import fraction, number, whole


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dadam",
        help="DADAM patch library and augmented data sets",
        description="DADAM: grow rare findings with lesion patches (CutMix / MixUp) while keeping "
        "their co-occurrence. Pipeline: import -> plan -> generate -> report.",
    )
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="dadam_command", metavar="STEP", required=True)

    imp = sub.add_parser("import", help="cut lesion patches from box-annotated images")
    imp.add_argument("--library", type=Path, required=True, help="patch library folder")
    imp.add_argument(
        "--boxes",
        type=Path,
        required=True,
        help="box file (CSV, CSV.gz or JSON), the COCO JSON file, or the YOLO / VOC folder",
    )
    imp.add_argument(
        "--format",
        default="fpsm",
        choices=("nih", "vindr", "chestxdet", "fpsm", "coco", "yolo", "voc"),
        help="nih BBox_List_2017.csv, vindr (PhysioNet or Kaggle CSV), chestxdet JSON, "
        "fpsm = VinDr layout with CXR-LT names, as fpsm sim writes (default); coco, yolo, voc "
        "as fpsm dadam export (or CVAT) writes them",
    )
    imp.add_argument("--images", type=Path, required=True, help="folder with the source images")
    imp.add_argument(
        "--readers",
        default="mean",
        choices=("mean", "keep", "union"),
        help="several readers' boxes of one lesion: mean corners (default), keep all, union",
    )
    imp.add_argument(
        "--iou", type=fraction(low_open=True), default=0.4, help="IoU linking readers' boxes (0.4)"
    )
    imp.add_argument(
        "--min-readers", type=whole(1), default=1, help="drop lesions with fewer readers"
    )
    imp.add_argument("--dataset", help="data set name recorded as provenance (default: format)")
    imp.add_argument(
        "--margin", type=number(0, 10), default=0.25, help="context margin per side (0.25)"
    )
    imp.add_argument(
        "--nih-data-entry",
        type=Path,
        help="NIH Data_Entry_2017.csv: pixel spacing of the 1024 px PNGs (for sizes in mm)",
    )
    imp.add_argument("--allow-burned-in", action="store_true", help="use BurnedInAnnotation YES")
    imp.set_defaults(step=run_import)

    lib = sub.add_parser("library", help="patch counts per class and state; curation; listing")
    lib.add_argument("library", type=Path, help="the patch library folder")
    lib.add_argument(
        "--accept",
        type=int,
        nargs="+",
        default=[],
        metavar="ID",
        help="mark these patches accepted",
    )
    lib.add_argument(
        "--reject",
        type=int,
        nargs="+",
        default=[],
        metavar="ID",
        help="mark these patches rejected",
    )
    lib.add_argument(
        "--unreview",
        type=int,
        nargs="+",
        default=[],
        metavar="ID",
        help="mark these patches unreviewed again",
    )
    lib.add_argument("--list", action="store_true", help="list every patch (after the changes)")
    lib.add_argument("--label", action="append", help="with --list: only this class (repeatable)")
    lib.add_argument(
        "--state",
        action="append",
        choices=("unreviewed", "accepted", "rejected"),
        help="with --list: only this curation state (repeatable)",
    )
    lib.add_argument(
        "--json",
        action="store_true",
        help="counts as JSON; with --list one JSON object per patch and line",
    )
    lib.set_defaults(step=run_library)

    exp = sub.add_parser("export", help="write the library's boxes as COCO, YOLO or VOC")
    exp.add_argument("library", type=Path, help="the patch library folder")
    exp.add_argument(
        "--format", required=True, choices=("coco", "yolo", "voc"), help="annotation layout"
    )
    exp.add_argument("--out", type=Path, required=True, help="output folder")
    exp.add_argument(
        "--state",
        action="append",
        choices=("unreviewed", "accepted", "rejected", "all"),
        help="curation states to export (repeatable; default: unreviewed and accepted)",
    )
    exp.add_argument("--label", action="append", help="only this class (repeatable)")
    exp.set_defaults(step=run_export)

    co = sub.add_parser("cooc", help="label correlation matrix and most correlated partners")
    co.add_argument("labels", type=Path, help="labels CSV (CXR-LT layout)")
    co.add_argument("--out", type=Path, help="write the matrix and partners as JSON")
    co.add_argument("--png", type=Path, help="draw the matrix as a PNG")
    co.set_defaults(step=run_cooc)

    pl = sub.add_parser("plan", help="plan synthetic images to reach per-class targets")
    pl.add_argument("--labels", type=Path, required=True, help="base labels CSV (CXR-LT layout)")
    pl.add_argument("--library", type=Path, required=True, help="the patch library folder")
    pl.add_argument("--out", type=Path, required=True, help="plan file to write (JSONL)")
    pl.add_argument(
        "--target",
        type=int,
        default=None,
        help="grow every finding with fewer positives to this many (paper: 15000)",
    )
    pl.add_argument(
        "--target-class",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a per-class target (repeatable; overrides --target for that class)",
    )
    pl.add_argument("--classes", nargs="+", metavar="NAME", help="limit --target to these classes")
    pl.add_argument("--budget", type=whole(1), required=True, help="most synthetic images")
    pl.add_argument("--seed", type=whole(0), default=0, help="planning seed (default 0)")
    pl.add_argument(
        "--alpha", type=fraction(low_open=True), default=0.6, help="MixUp patch weight (0.6)"
    )
    pl.add_argument(
        "--strategy",
        default="cooc",
        choices=("cooc", "template", "paper"),
        help="cooc: keep the correlation matrix (default); template: copy real label sets; "
        "paper: half CutMix, half MixUp with the partner",
    )
    pl.add_argument(
        "--max-patches", type=whole(1, 16), default=3, help="most patches per image (default 3)"
    )
    pl.add_argument(
        "--accepted-only",
        action="store_true",
        help="use accepted patches only (default: all but rejected)",
    )
    add_plan_options(pl)
    pl.set_defaults(step=run_plan)

    gen = sub.add_parser("generate", help="make the augmented data set a plan describes")
    gen.add_argument("--plan", type=Path, required=True, help="plan file (fpsm dadam plan --out)")
    gen.add_argument("--library", type=Path, required=True, help="the patch library folder")
    gen.add_argument("--images", type=Path, required=True, help="root of the labels CSV's paths")
    gen.add_argument("--out", type=Path, required=True, help="output folder of the data set")
    gen.add_argument("--labels", type=Path, help="base labels CSV (default: the plan's)")
    gen.add_argument(
        "--workers",
        type=whole(0, 64),
        default=2,
        help="worker processes (default 2; 0 or 1: in this process)",
    )
    gen.add_argument(
        "--lung",
        default="estimate",
        help="estimate (default), template, or a folder of <dicom_id>.png lung masks",
    )
    gen.add_argument("--base-boxes", type=Path, help="the base data set's boxes (VinDr layout)")
    gen.add_argument("--synthetic-only", action="store_true", help="labels.csv without originals")
    gen.add_argument(
        "--pseudonymize",
        action="store_true",
        help="pseudonymous subject/study ids (synthetic only)",
    )
    gen.add_argument(
        "--allow-burned-in", action="store_true", help="use images with BurnedInAnnotation YES"
    )
    gen.add_argument(
        "--image-format",
        default="auto",
        choices=("auto", "png", "jpg"),
        help="auto: JPEG (q 95) for JPEG destinations, else PNG (default)",
    )
    gen.add_argument("--limit", type=whole(1), help="make at most N images in this run")
    gen.set_defaults(step=run_generate)

    rep = sub.add_parser("report", help="counts and co-occurrence before / after")
    rep.add_argument("--original", type=Path, required=True, help="base labels CSV")
    rep.add_argument("--augmented", type=Path, required=True, help="labels.csv from generate")
    rep.add_argument("--out", type=Path, required=True, help="folder for PNGs, JSON, markdown")
    rep.add_argument("--library", type=Path, help="also report the library's patch efficacy")
    rep.set_defaults(step=run_report)

    register_score(sub)
    sub.choices["score"].set_defaults(step=run_score)


def run(args: argparse.Namespace) -> int:
    """Run the chosen step; returns the exit status."""
    return int(args.step(args))


def _errors() -> tuple[type[BaseException], ...]:
    from fpsm_core.errors import FpsmError  # DadamError and the labels-table errors alike

    return (FpsmError,)


def _fail(exc: BaseException) -> Any:
    from fpsm_core.cli.main import CLIError

    return CLIError(str(exc).rstrip(".") + ".")


def _bar(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, unit="img", dynamic_ncols=True)


def run_import(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.boxes import nih_spacing, read_boxes
    from fpsm_core.dadam.importer import import_boxes
    from fpsm_core.dadam.library import PatchLibrary

    try:
        boxes = read_boxes(
            args.boxes,
            args.format,
            readers=args.readers,
            iou=args.iou,
            min_readers=args.min_readers,
            image_sizes=_image_sizes(args.images),
        )
        print(boxes.summary())
        spacing = nih_spacing(args.nih_data_entry) if args.nih_data_entry else None
        if not args.images.is_dir():
            raise _fail(ValueError(f"'{args.images}': images folder not found"))
        bar = _bar(len({b.image_id for b in boxes.boxes}), "import")
        with PatchLibrary(args.library) as lib:
            try:
                report = import_boxes(
                    lib,
                    boxes,
                    args.images,
                    dataset=args.dataset,
                    margin=args.margin,
                    spacing_mm=spacing,
                    allow_burned_in=args.allow_burned_in,
                    progress=(lambda d, t: bar.update(d - bar.n)) if bar else None,
                )
            finally:  # an error's sentence goes on its own line, not after the bar
                if bar:
                    bar.close()
            print(report.summary())
            print(f"library {args.library}: {len(lib)} patches")
    except _errors() as exc:
        raise _fail(exc) from None
    return 0


def _image_sizes(root: Path) -> Any:
    """Image id -> (width, height) from the images themselves (YOLO folders without sizes)."""

    def size(image_id: str) -> tuple[int, int] | None:
        from fpsm_core.dadam.importer import ImageFinder, load_display
        from fpsm_core.io import ImageLoadError

        path = ImageFinder(root).find(image_id) if root.is_dir() else None
        if path is None:
            return None
        try:
            pixels, _ = load_display(path, allow_burned_in=True)
        except (ImageLoadError, OSError, ValueError):
            return None
        return int(pixels.shape[1]), int(pixels.shape[0])

    return size


def patch_record(patch: Any) -> dict[str, Any]:
    """What ``--list --json`` prints for one patch (what the editor's gallery shows)."""
    w, h = patch.size_px
    return {
        "id": patch.id,
        "label": patch.label,
        "state": patch.state,
        "rating": patch.rating,
        "tags": list(patch.tags),
        "notes": patch.notes,
        "size_px": [w, h],
        "size_mm": None if patch.size_mm is None else [round(v, 3) for v in patch.size_mm],
        "dataset": patch.dataset,
        "image_id": patch.image_id,
        "image": patch.image_path,
        "image_size": list(patch.image_size),
        "box": [round(v, 3) for v in patch.source_box],
        "readers": patch.readers,
        "edited": patch.edited,
        "file": str(patch.file),
    }


def run_library(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.library import PatchLibrary

    try:
        with PatchLibrary(args.library, create=False) as lib:
            for ids, state in (
                (args.accept, "accepted"),
                (args.reject, "rejected"),
                (args.unreview, "unreviewed"),
            ):
                if ids:
                    cs = lib.set_state(ids, state)
                    print(f"{cs.changed} patches {state}", file=sys.stderr if args.list else None)
                    for missing in cs.missing:
                        print(f"{args.library}: no patch {missing}", file=sys.stderr)
            if args.list:
                return _list(lib, args)
            counts = lib.state_counts()
            if args.json:
                print(json.dumps(counts, indent=1, sort_keys=True))
                return 0
            print(f"{'class':<28}{'unreviewed':>12}{'accepted':>10}{'rejected':>10}")
            for label in sorted(counts):
                c = counts[label]
                print(f"{label:<28}{c['unreviewed']:>12}{c['accepted']:>10}{c['rejected']:>10}")
            print(f"{len(lib)} patches, {lib.provenance_count()} source boxes")
    except _errors() as exc:
        raise _fail(exc) from None
    return 0


def _list(lib: Any, args: argparse.Namespace) -> int:
    from fpsm_core.dadam.editing import check_label

    labels = [check_label(name) for name in args.label] if args.label else None
    ids = lib.query_ids(labels=labels, states=args.state)
    out = sys.stdout
    if not args.json:
        print(f"{'id':>7}  {'label':<26}{'state':<12}{'rating':>6}  {'size px':>9}  "
              f"{'size mm':>11}  {'dataset':<10}{'image':<24}box", file=out)  # fmt: skip
    for start in range(0, len(ids), 1000):  # pages keep memory flat on a large library
        page = ids[start : start + 1000]
        scores = efficacy_records(lib, page) if args.json else {}
        for p in lib.get_many(page):
            if args.json:
                out.write(json.dumps(patch_record(p) | {"efficacy": scores.get(p.id, [])}) + "\n")
                continue
            w, h = p.size_px
            mm = "-" if p.size_mm is None else f"{p.size_mm[0]:.1f}x{p.size_mm[1]:.1f}"
            box = ",".join(f"{v:.0f}" for v in p.source_box)
            tags = f"  [{', '.join(p.tags)}]" if p.tags else ""
            print(f"{p.id:>7}  {p.label:<26}{p.state:<12}{p.rating or '-':>6}  {f'{w}x{h}':>9}  "
                  f"{mm:>11}  {p.dataset:<10}{p.image_id:<24}{box}{tags}", file=out)  # fmt: skip
    if not args.json:
        print(f"{len(ids)} patches", file=out)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.editing import check_label
    from fpsm_core.dadam.exchange import export_boxes
    from fpsm_core.dadam.library import PatchLibrary

    states = None if args.state and "all" in args.state else args.state
    try:
        labels = [check_label(name) for name in args.label] if args.label else None
        with PatchLibrary(args.library, create=False) as lib:
            report = export_boxes(
                lib,
                args.format,
                args.out,
                states=states or (None if args.state else ("unreviewed", "accepted")),
                labels=labels,
            )
    except _errors() as exc:
        raise _fail(exc) from None
    print(report.summary())
    return 0


def run_cooc(args: argparse.Namespace) -> int:
    import cv2

    from fpsm_core.dadam.cooc import correlation_matrix, most_correlated
    from fpsm_core.dadam.report import render_matrices
    from fpsm_core.dadam.table import read_labels_csv
    from fpsm_core.labels import LABELS

    try:
        table = read_labels_csv(args.labels)
    except _errors() as exc:
        raise _fail(exc) from None
    corr = correlation_matrix(table.y)
    partners = most_correlated(corr)
    print(f"{len(table)} images")
    print(f"{'class':<28}{'positives':>10}  most correlated (|r|)")
    counts = table.counts()
    for i, name in enumerate(LABELS):
        partner = partners[name]
        r = corr[i, LABELS.index(partner)] if partner else 0.0
        print(f"{name:<28}{counts[name]:>10}  {partner or '-'} ({r:.3f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"labels": list(LABELS), "matrix": corr.round(5).tolist(), "partners": partners},
                indent=1,
            )
        )
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.png), render_matrices(corr, corr, titles=("|corr|", "|corr|")))
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.library import PatchLibrary
    from fpsm_core.dadam.planner import make_plan, write_plan
    from fpsm_core.dadam.table import read_labels_csv
    from fpsm_core.labels import LABELS, UnknownLabelError, to_cxrlt

    try:
        table = read_labels_csv(args.labels)
        counts = table.counts()
        targets: dict[str, int] = {}
        if args.target is not None:
            chosen = args.classes or [n for n in LABELS if n != "No Finding"]
            for raw in chosen:
                name = to_cxrlt(raw, "cxrlt")
                assert name is not None
                if counts[name] < args.target:
                    targets[name] = args.target
        for spec in args.target_class:
            name_raw, _, n = spec.rpartition("=")
            if not name_raw or not n.isdigit():
                raise _fail(ValueError(f"--target-class expects NAME=N, got {spec!r}"))
            name = to_cxrlt(name_raw, "cxrlt")
            assert name is not None
            targets[name] = int(n)
        if not targets:
            raise _fail(ValueError("no class is below its target: give --target or --target-class"))
        states = ("accepted",) if args.accepted_only else ("unreviewed", "accepted")
        with PatchLibrary(args.library, create=False) as lib:
            plan = make_plan(
                table,
                efficacy_patches(lib, args, states),
                targets=targets,
                budget=args.budget,
                seed=args.seed,
                alpha=args.alpha,
                strategy=args.strategy,
                max_patches=args.max_patches,
                states=states,
                sources={
                    "labels_csv": str(args.labels.resolve()),
                    "library": str(args.library.resolve()),
                }
                | (
                    {
                        "min_efficacy": str(args.min_efficacy),
                        "efficacy_model": str(args.efficacy_model or ""),
                    }
                    if args.min_efficacy is not None
                    else {}
                ),
            )
        write_plan(plan, args.out)
    except UnknownLabelError as exc:
        raise _fail(exc) from None
    except _errors() as exc:
        raise _fail(exc) from None
    h = plan.header
    print(f"{h['n_items']} synthetic images planned ({h['modes']['cutmix']} CutMix, "
          f"{h['modes']['mixup']} MixUp) -> {args.out}")  # fmt: skip
    no_patches = sorted(n for n, why in h["unreachable"].items() if why.startswith("no patches"))
    print(f"{'class':<28}{'before':>9}{'target':>9}{'after':>9}")
    for name in LABELS:
        if name in no_patches:
            continue
        if name in targets or h["counts_after"][name] != h["counts_before"][name]:
            t = targets.get(name)
            print(
                f"{name:<28}{h['counts_before'][name]:>9}{(t if t else '-'):>9}{h['counts_after'][name]:>9}"
            )
    if no_patches:
        print(f"not reached, no patches in the library: {', '.join(no_patches)}")
    for name, why in sorted(h["unreachable"].items()):
        if name not in no_patches:
            print(f"not reached: {name}: {why}")
    d = h["cooc_distance"]
    print(
        f"co-occurrence distance (planned): Frobenius {d['frobenius']:.3f}, mean |diff| {d['mean_abs']:.4f}"
    )
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.generator import generate
    from fpsm_core.dadam.planner import read_plan

    try:
        total = len(read_plan(args.plan).items)
        bar = _bar(total, "generate")
        try:
            report = generate(
                args.plan,
                args.library,
                args.images,
                args.out,
                workers=args.workers,
                lung=args.lung,
                base_boxes=args.base_boxes,
                labels_csv=args.labels,
                include_original=not args.synthetic_only,
                pseudonymize=args.pseudonymize,
                allow_burned_in=args.allow_burned_in,
                image_format=args.image_format,
                limit=args.limit,
                progress=(lambda d, t: bar.update(d - bar.n)) if bar else None,
            )
        finally:  # an error's sentence goes on its own line, not after the bar
            if bar:
                bar.close()
    except _errors() as exc:
        raise _fail(exc) from None
    rate = report.generated / report.seconds if report.seconds > 0 else 0.0
    print(
        f"{report.generated} images made ({rate:.1f}/s), {report.resumed} from an earlier run, "
        f"{len(report.failed)} failed -> {report.out}"
    )
    for line in report.failed[:10]:
        print(f"  failed: {line}", file=sys.stderr)
    print(f"labels: {report.labels_csv}\nboxes: {report.boxes_csv}\nmanifest: {report.manifest}")
    return 1 if report.failed else 0


def run_report(args: argparse.Namespace) -> int:
    from fpsm_core.dadam.report import write_report

    try:
        rep = write_report(args.original, args.augmented, args.out)
        report_efficacy(args.library, Path(args.out))
    except _errors() as exc:
        raise _fail(exc) from None
    d = rep.distance
    print(f"{rep.n_before} -> {rep.n_after} images; co-occurrence distance: Frobenius "
          f"{d.frobenius:.3f}, mean |diff| {d.mean_abs:.4f}, max {d.max_abs:.3f} "
          f"({d.worst[0]} / {d.worst[1]})")  # fmt: skip
    for name, path in rep.files.items():
        print(f"{name}: {path}")
    return 0
