"""``fpsm infer``: ranked findings for radiographs from the command line.

Folders expand to the images inside them (recursively). Each unreadable file is reported on its own
line (or as ``{"path", "error"}`` with ``--json``) and the rest go on; the exit status is 1 when any
file failed. Results from an untrained model say so on every output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders, or a CXR-LT / MIMIC-CXR-JPG CSV listing the images",
    )
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
        "predictions.json (the model and disclaimer of predictions.csv); a run "
        "into the same DIR resumes, skipping the files it already finished",
    )
    p.add_argument(
        "--batch-size",
        type=whole(1, 1024),
        default=None,
        help="images per forward pass (default: by device, 8 on CPU; see docs/scale.md)",
    )
    p.add_argument(
        "--workers",
        type=whole(0, 64),
        default=None,
        metavar="N",
        help="decode worker processes (default: by device and core count; 0 decodes in-process)",
    )
    p.add_argument(
        "--threads",
        type=whole(1, 256),
        default=None,
        metavar="N",
        help="torch threads for the forward pass (default: the cores the workers and other "
        "load leave, at least 1)",
    )
    p.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="folder the paths in a CSV input list are relative to (default: the CSV's folder)",
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


def expand_paths(paths: Iterable[str | Path], root: Path | None = None) -> list[Path]:
    """Files as given; folders walked for the files the viewer would index, sorted; a CSV input
    list (CXR-LT, MIMIC-CXR-JPG) stands for the images it names, relative to ``root``."""
    from fpsm_core.io.studies import image_files
    from fpsm_core.pipeline.inputs import is_input_list, read_input_list

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(image_files(path))
        elif is_input_list(path):
            out.extend(read_input_list(path, root))
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
    from fpsm_core.pipeline.shard import Ranks

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
    ranks = Ranks.from_env()
    if ranks.distributed and args.out is None:
        raise CLIError(
            "under torchrun, fpsm infer needs --out DIR (on a file system every node sees): "
            "each rank writes its share there and rank 0 merges them."
        )
    paths = expand_paths(args.paths, root=args.root)
    if not paths:
        raise CLIError("no image files found in the given paths.")
    if not any(p.exists() for p in paths):  # nothing to run on: say so before loading a model
        if ranks.is_main:
            return _report_missing(paths, as_json=args.json)
        return 1
    return _Run(args, paths, ranks, dicom).execute()


class _Run:
    """One ``fpsm infer`` run: this rank's files through the pipeline into stdout and the store."""

    def __init__(self, args: argparse.Namespace, paths: list[Path], ranks: Any, dicom: Any) -> None:
        self.args, self.paths, self.ranks, self.dicom = args, paths, ranks, dicom
        self.label = f"[rank {ranks.rank}] " if ranks.distributed else ""

    def execute(self) -> int:
        from fpsm_core.cli.main import CLIError
        from fpsm_core.device import pick_device
        from fpsm_core.inference import InferenceError, InferenceService
        from fpsm_core.model.checkpoint import CheckpointError
        from fpsm_core.pipeline import plan_run, shard, tune_allocator

        args, ranks = self.args, self.ranks
        allocator = tune_allocator()  # before the model's buffers exist
        try:
            device = pick_device(
                args.device, local_rank=ranks.local_rank if ranks.distributed else None
            )
            service = InferenceService(
                args.model, device=str(device), batch_size=args.batch_size or 8
            )
        except (CheckpointError, InferenceError, FileNotFoundError) as exc:
            raise CLIError(str(exc)) from None
        shard.join(ranks, device.type)
        mine = shard.shard(self.paths, ranks)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
        done, todo = self._resume(service, mine)
        plan = plan_run(
            device.type,
            len(todo),
            input_size=max(m.meta.preprocessing.input_size for m in service.ensemble.members),
            memory_gib=_device_memory_gib(device),
            batch_size=args.batch_size,
            workers=args.workers,
            threads=args.threads,
            shrink=not ranks.distributed,  # every rank pads to one shape, as the merge expects
        )
        import torch

        torch.set_num_threads(plan.threads)
        service.batch_size = plan.batch_size
        if not args.json and ranks.is_main:
            _print_banner(service, sys.stdout)
            _print_trust(service, sys.stdout)
            print(f"pipeline: {plan.describe()}; {allocator.note}", file=sys.stdout)
        failures = self._stream(service, todo, plan)
        if self.store is not None:
            self.store.close()
            failures = self._write_outputs(service, mine, done)
        failed_everywhere = shard.total(ranks, failures, device.type)
        shard.leave(ranks)
        if failures and not args.json:
            print(
                f"\n{self.label}{failures} of {len(mine)} files could not be read.", file=sys.stderr
            )
        return 1 if failed_everywhere else 0

    # -- resume ------------------------------------------------------------------------------
    def _resume(self, service: Any, mine: list[Path]) -> tuple[dict[str, Any], list[Path]]:
        from fpsm_core.pipeline.store import ResultStore, finished

        self.store = None
        if self.args.out is None:
            return {}, mine
        self.model_key, self.options_key = (
            _digest(_model_identity(service)),
            _digest(_output_options(self.args)),
        )
        done = finished(
            self.args.out, [_key(p) for p in mine], model=self.model_key, options=self.options_key
        )
        todo = [p for p in mine if _key(p) not in done]
        if done:
            print(
                f"{self.label}resuming: {len(done)} of {len(mine)} files already done in "
                f"'{self.args.out}'; {len(todo)} to go.",
                file=sys.stderr,
                flush=True,
            )
        name = (
            f"results.rank{self.ranks.rank}.sqlite" if self.ranks.distributed else "results.sqlite"
        )
        self.store = ResultStore(
            self.args.out / name, model=self.model_key, options=self.options_key
        )
        return done, todo

    # -- the stream ------------------------------------------------------------------------
    def _stream(self, service: Any, todo: list[Path], plan: Any) -> int:
        from fpsm_core.inference import LoadFailure
        from fpsm_core.io.deid import DeidentificationError
        from fpsm_core.pipeline import Progress, run_pipeline
        from fpsm_core.pipeline.store import FileStamp

        args, store = self.args, self.store
        stamps = {str(p): FileStamp.of(p) for p in todo} if store is not None else {}
        bar = Progress(len(todo), label=self.label.strip()) if len(todo) > 1 else None

        def on_batch(done: int, total: int) -> None:
            if store is not None:
                store.commit()  # a batch is the unit a killed run can lose
            if bar is not None:
                bar.update_to(done, total)

        failures = 0
        closed_form = args.cam_method == "closed-form"
        try:
            for item in run_pipeline(
                service,
                todo,
                plan,
                cams=(args.cams and closed_form) or self.dicom is not None,
                progress=on_batch,
            ):
                error: str | None = None
                if isinstance(item, LoadFailure):
                    failures += 1
                    record: dict[str, Any] = {"path": item.path, "error": item.error}
                    if args.json:
                        print(json.dumps(record), flush=True)
                    else:
                        print(f"\n{item.path}\n  error: {item.error}", flush=True)
                    if store is not None:
                        store.add(
                            _key(item.path), stamps.get(item.path), record=record, error=item.error
                        )
                    continue
                record = item.to_json()
                if args.cams:
                    try:
                        record["cams"] = _write_cams(item, args, service)
                    except DeidentificationError as exc:  # this image only; the batch goes on
                        failures += 1
                        error = str(exc)
                        record["cams"] = {"error": error}
                        print(f"{item.path}: {exc}", file=sys.stderr, flush=True)
                if args.json:
                    print(json.dumps(_trimmed(record, args.top)), flush=True)
                else:
                    _print_table(item, args.top or 10, sys.stdout)
                if self.dicom is not None and not self.dicom.write(item):
                    failures += 1
                    error = error or f"the DICOM outputs of '{item.path}' could not be written."
                if store is not None:
                    path = str(item.path or "")
                    store.add(
                        _key(path),
                        stamps.get(path),
                        record=record,
                        error=error,
                        probabilities=[float(p) for p in item.probabilities],
                    )
        finally:
            if store is not None:
                store.commit()
            if bar is not None:
                bar.close()
        return failures

    # -- outputs from the store ---------------------------------------------------------------
    def _write_outputs(self, service: Any, mine: list[Path], earlier: dict[str, Any]) -> int:
        """This rank's outputs (all of them on rank 0 after the others); its failures, all runs."""
        from fpsm_core.pipeline import shard
        from fpsm_core.pipeline.outputs import write_jsonl, write_predictions
        from fpsm_core.pipeline.store import finished

        out, top = self.args.out, self.args.top
        keys = [_key(p) for p in mine]
        rows = finished(out, keys, model=self.model_key, options=self.options_key)
        if self.ranks.distributed:
            write_jsonl(out / f"results.rank{self.ranks.rank}.jsonl", keys, rows, top=top)
            shard.barrier(self.ranks)  # every rank's store is complete
        if self.ranks.is_main:
            all_keys = [_key(p) for p in self.paths]
            every = (
                finished(out, all_keys, model=self.model_key, options=self.options_key)
                if self.ranks.distributed
                else rows
            )
            write_jsonl(out / "results.jsonl", all_keys, every, top=top)
            write_predictions(out / "predictions.csv", all_keys, every, service.labels)
            _write_model_sidecar(out / "predictions.json", service)
        shard.barrier(self.ranks)  # nobody exits (and ends the job) while rank 0 merges
        for key in keys:
            row = earlier.get(key)
            if row is not None and not row.ok:
                print(
                    f"{self.label}failed in an earlier run: {row.error}",
                    file=sys.stderr,
                    flush=True,
                )
        return sum(1 for key in keys if key in rows and not rows[key].ok)


def _key(path: str | Path) -> str:
    """A file's key in the output store: its absolute path (runs may start from other folders)."""
    return os.path.abspath(path)


def _trimmed(record: dict[str, Any], top: int | None) -> dict[str, Any]:
    from fpsm_core.pipeline.outputs import trimmed

    return trimmed(record, top)


def _model_identity(service: Any) -> dict[str, Any]:
    identity = dict(service.identity())
    identity.pop("device", None)
    identity.pop("path", None)
    return identity


def _output_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options that change what a file's outputs are (a change redoes every file)."""
    names = (
        "cams",
        "cam_method",
        "cam_top",
        "allow_burned_in",
        "show_phi",
        "dicom_out",
        "dicom",
        "deidentify",
    )
    return {name: str(getattr(args, name, None)) for name in names}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _device_memory_gib(device: Any) -> float:
    if device.type != "cuda":
        return 0.0
    import torch

    return float(torch.cuda.get_device_properties(device).total_memory) / 2**30


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
