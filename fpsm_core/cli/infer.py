"""``fpsm infer``: ranked findings for radiographs from the command line.

Folders expand to the images inside them (recursively). Each unreadable file is reported on its own
line (or as ``{"path", "error"}`` with ``--json``) and the rest go on; the exit status is 1 when any
file failed. Results from an untrained model say so on every output.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from fpsm_core.cli.options import whole
from fpsm_core.export import infer_options as dicom_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "infer",
        help="rank the 26 CXR-LT findings for images or folders",
        description="Rank the 26 CXR-LT findings for chest radiographs (DICOM, PNG, JPEG, TIFF). "
        "Research software, not for clinical use.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--model",
        help="checkpoint (.json/.safetensors) or ensemble directory (default: the bundled model)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--json", action="store_true", help="one JSON object per line per image")
    p.add_argument(
        "--top",
        type=whole(1, 26),
        default=None,
        metavar="K",
        help="show only the K most probable findings (table default 10; JSON default all)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="also write results.jsonl, predictions.csv (CXR-LT submission layout) and "
        "predictions.json (the model and disclaimer of predictions.csv)",
    )
    p.add_argument(
        "--batch-size", type=whole(1, 1024), default=4, help="images per forward pass (default 4)"
    )
    p.add_argument(
        "--cams",
        action="store_true",
        help="write per-level Grad-CAM maps (.npz) and overlays (PNG) to --out",
    )
    p.add_argument(
        "--cam-method",
        default="closed-form",
        help="closed-form (exact per-level Grad-CAM, default) or a grad-cam package "
        "method: gradcam, gradcam++, hirescam, layercam, eigencam, scorecam",
    )
    p.add_argument(
        "--cam-top",
        type=whole(1, 26),
        default=3,
        metavar="K",
        help="overlays for the K most probable findings (default 3)",
    )
    p.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="write CAM overlays of images whose header says BurnedInAnnotation YES",
    )
    p.add_argument(
        "--show-phi",
        action="store_true",
        help="put a patient/study line (patient ID and name, study UID) on the CAM overlays' "
        "captions (hidden by default)",
    )
    dicom_options.add_options(p)  # --dicom-out DIR [--dicom KINDS] [--deidentify]
    p.set_defaults(func=run)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders walked for the files the viewer would index, sorted."""
    from fpsm_core.io.studies import image_files

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(image_files(path))
        else:
            out.append(path)  # missing files are reported by the loader, one line each
    return out


def _report_missing(paths: list[Path], *, as_json: bool) -> int:
    """Every input is missing: the loader's sentence for each, as the batch would print it."""
    from fpsm_core.io import ImageLoadError, load_image

    for path in paths:
        try:
            load_image(path)
            error = f"'{path}' appeared while being checked; run again."
        except ImageLoadError as exc:
            error = str(exc)
        if as_json:
            print(json.dumps({"path": str(path), "error": error}), flush=True)
        else:
            print(f"\n{path}\n  error: {error}", flush=True)
    print(f"{len(paths)} of {len(paths)} files could not be read.", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.inference import InferenceError, InferenceService, LoadFailure
    from fpsm_core.io.deid import DeidentificationError
    from fpsm_core.model.checkpoint import CheckpointError

    if args.top is not None and args.top < 1:
        raise CLIError("--top must be at least 1.")
    if args.cams and args.out is None:
        raise CLIError("--cams needs --out DIR to write the maps and overlays into.")
    try:  # DICOM outputs (fpsm_core.export)
        dicom = dicom_options.DicomWriter.from_args(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.cam_method.lower() != "closed-form":
        from fpsm_core.explain.package import METHODS

        if args.cam_method.lower() not in METHODS:
            raise CLIError(
                f"--cam-method {args.cam_method!r} is not a CAM method; choose closed-form or "
                f"one of {', '.join(sorted(METHODS))}."
            )
    paths = expand_paths(args.paths)
    if not paths:
        raise CLIError("no image files found in the given paths.")
    if not any(p.exists() for p in paths):  # nothing to run on: say so before loading a model
        return _report_missing(paths, as_json=args.json)
    try:
        service = InferenceService(args.model, device=args.device, batch_size=args.batch_size)
    except (CheckpointError, InferenceError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    out_jsonl = (args.out / "results.jsonl").open("w", encoding="utf-8") if args.out else None
    out_csv = (
        (args.out / "predictions.csv").open("w", encoding="utf-8", newline="") if args.out else None
    )
    csv_writer = csv.writer(out_csv) if out_csv else None
    if csv_writer:
        csv_writer.writerow(["dicom_id", *service.labels])
        _write_model_sidecar(args.out / "predictions.json", service)

    if not args.json:
        _print_banner(service, sys.stdout)
        _print_trust(service, sys.stdout)
    bar = _progress(len(paths))
    failures = 0
    closed_form = args.cam_method == "closed-form"
    try:
        for item in service.predict_paths(
            paths,
            cams=(args.cams and closed_form) or dicom is not None,
            progress=bar.update_to if bar else None,
        ):
            if isinstance(item, LoadFailure):
                failures += 1
                record: dict[str, Any] = {"path": item.path, "error": item.error}
                if args.json:
                    print(json.dumps(record), flush=True)
                else:
                    print(f"\n{item.path}\n  error: {item.error}", flush=True)
                if out_jsonl:
                    out_jsonl.write(json.dumps(record) + "\n")
                continue
            record = item.to_json(top=args.top)
            if args.cams:
                try:
                    record["cams"] = _write_cams(item, args, service)
                except DeidentificationError as exc:  # this image only; the batch goes on
                    failures += 1
                    record["cams"] = {"error": str(exc)}
                    print(f"{item.path}: {exc}", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                _print_table(item, args.top or 10, sys.stdout)
            if out_jsonl:
                out_jsonl.write(json.dumps(record) + "\n")
            if dicom is not None and not dicom.write(item):
                failures += 1
            if csv_writer:
                csv_writer.writerow(
                    [Path(item.path or "").stem, *[f"{p:.6f}" for p in item.probabilities]]
                )
    finally:
        if bar:
            bar.close()
        for fh in (out_jsonl, out_csv):
            if fh:
                fh.close()
    if failures and not args.json:
        print(f"\n{failures} of {len(paths)} files could not be read.", file=sys.stderr)
    return 1 if failures else 0


def _write_cams(result: Any, args: argparse.Namespace, service: Any) -> Any:
    from fpsm_core.explain import write_result_cams

    return write_result_cams(
        result,
        service,
        args.out,
        method=args.cam_method,
        top_k=args.cam_top,
        allow_burned_in=getattr(args, "allow_burned_in", False),
        show_phi=getattr(args, "show_phi", False),
    )


def _write_model_sidecar(path: Path, service: Any) -> None:
    """predictions.csv keeps the CXR-LT submission layout (no room for more columns), so the
    model that made it and its disclaimer go beside it."""
    model = service.ensemble.describe()
    record = {
        "describes": "predictions.csv",
        "model": model.identity(),
        "disclaimer": model.disclaimer or "Research software, not for clinical use.",
        "labels": list(model.labels),
        "thresholds": [round(float(x), 6) for x in model.thresholds],
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _print_banner(service: Any, out: TextIO) -> None:
    model = service.ensemble.describe()
    print(f"model: {model.summary()} on {service.device}", file=out)
    if model.untrained:
        print(
            "WARNING: this model is UNTRAINED (random weights); its probabilities mean nothing.",
            file=out,
        )
    if model.disclaimer:
        print(model.disclaimer, file=out)


def _print_table(result: Any, top: int, out: TextIO) -> None:
    print(
        f"\n{result.path}  ({result.image_shape[1]}x{result.image_shape[0]}, "
        f"{result.timing_ms['total']:.0f} ms)",
        file=out,
    )
    from fpsm_core.trust.runtime import OUTSIDE

    verdict = result.input
    if verdict.in_distribution is False:
        print(f"  WARNING: {OUTSIDE}", file=out)
        for reason in verdict.reasons:
            print(f"    - {reason.sentence}", file=out)
    width = max(len(f.label) for f in result.findings)
    for rank, f in enumerate(result.findings[:top], 1):
        bar = "#" * round(f.probability * 20)
        mark = "*" if f.above_threshold else " "
        spread = f" ±{f.member_spread / 2:.2f}" if len(f.member_probabilities) > 1 else ""
        print(
            f"  {rank:2d}. {f.label:<{width}}  {f.probability:6.3f}{spread} {mark} {bar}", file=out
        )
    legend = "* above its threshold"
    if len(result.member_names) > 1:
        legend += "; ± half the range of the members' probabilities"
    print(f"  ({legend})", file=out)
    if result.untrained:
        print("  (untrained model: probabilities are meaningless)", file=out)


def _print_trust(service: Any, out: TextIO) -> None:
    trust = service.trust
    if trust.calibrated:
        print("probabilities: calibrated (per-class Platt scaling on held-out data)", file=out)
    else:
        print("probabilities: NOT calibrated (the model has no calibration)", file=out)
    if not trust.has_gate:
        print(f"input check: header and pixel checks only; {trust.note}", file=out)


class _Bar:
    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="img", file=sys.stderr, leave=False, disable=None)

    def update_to(self, done: int, total: int) -> None:
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _progress(total: int) -> _Bar | None:
    return _Bar(total) if total > 1 else None
