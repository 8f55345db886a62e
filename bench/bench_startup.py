"""Start-up benchmark: launch -> window -> first film -> findings, RSS at each point, ``fpsm info``.

Run: ``python bench/bench_startup.py`` (``--help`` for options). Each viewer launch is a fresh
process (``python bench/bench_startup.py --child ...``) timed from just before the parent starts
it, so interpreter start, imports and Qt set-up all count, as they do for a user:

- ``window``: the main window is shown (and one event-loop turn has run);
- ``first film``: the film's first pixels are on screen (``MainWindow.image_shown``, then one
  repaint); the child also records whether ``torch`` / ``timm`` were imported by then;
- ``model``: the model is loaded (``model_ready``); ``findings``: the findings and the heatmap
  are shown (``result_shown``, then the level strip's ``grid_drawn``).

At each point it reads the process's RSS (``VmRSS``), and the peak (``VmHWM``) at the end. Two
ways of starting are run side by side in one run, on the same files: ``lazy`` (the viewer as it
is: torch is first imported by the worker that loads the model) and ``eager`` (torch and timm
imported before the window is built, which is what importing the viewer did before issue 21).
``--src LABEL=DIR`` adds launches of another source tree (e.g. an exported older commit), so a
change can be compared with what came before it on the same machine in the same run.

The model defaults to a 3-member TResNet-M FPSM 4+3+2 512 px ensemble with random weights and the
film to a 3000x3000 12-bit DICOM, both written once under ``--work`` with the project's own
writers. ``fpsm info FILE`` is timed the same way (fresh processes, median), beside a bare
``python -c pass``. The machine may be shared: medians of ``--repeats`` launches are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POINTS = ("window", "first_film", "model", "findings")


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident set (or its peak, ``VmHWM``) in MiB, from ``/proc/self/status``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def live_memory() -> dict[str, Any]:
    """What Python can name of the anonymous memory: torch tensors and numpy arrays alive.

    Both are found through the garbage collector, each buffer counted once (a view counts as
    its base), the arrays grouped by the type of the object that holds them. With
    ``FPSM_BENCH_TRACE`` set, tracemalloc ran from the start and Python's own allocations
    (objects, code, dicts) are totalled too.
    """
    import gc

    import numpy as np

    out: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    storages: dict[int, tuple[int, str]] = {}
    arrays: dict[int, tuple[int, str, int]] = {}
    # Tuples and dicts holding only untracked objects (arrays) leave the collector's list:
    # walk down from every tracked object through such containers too.
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(o, type(o).__name__) for o in gc.get_objects()]
    while stack:
        holder, owner = stack.pop()
        if torch is not None and isinstance(holder, torch.Tensor):
            try:
                st = holder.untyped_storage()
                storages[st.data_ptr()] = (st.nbytes(), f"{holder.dtype} {tuple(holder.shape)}")
            except Exception:  # noqa: BLE001, S112 - meta tensors, subclasses without storage
                continue
            continue
        for ref in gc.get_referents(holder):
            if isinstance(ref, np.ndarray):
                base = ref
                while isinstance(base.base, np.ndarray):
                    base = base.base
                if base.base is None and id(base) not in arrays:
                    what = f"{base.dtype} {base.shape} held by {owner}"
                    arrays[id(base)] = (base.nbytes, what, base.ctypes.data)
            elif isinstance(ref, tuple | dict) and not gc.is_tracked(ref) and id(ref) not in seen:
                seen.add(id(ref))
                stack.append((ref, owner))
    out["tensors_mib"] = sum(n for n, _ in storages.values()) / 2**20
    out["tensors_n"] = len(storages)
    out["tensors_top"] = [
        f"{n / 2**20:.1f} MiB {what}" for n, what in sorted(storages.values(), reverse=True)[:6]
    ]
    out["arrays_mib"] = sum(n for n, _, _ in arrays.values()) / 2**20
    out["arrays_top"] = [
        f"{n / 2**20:.1f} MiB {what}" for n, what, _ in sorted(arrays.values(), reverse=True)[:12]
    ]
    # Where the big buffers live, to name the anonymous mappings that hold them.
    out["buffers"] = [
        (addr, n, what)
        for n, what, addr in [*arrays.values(), *((n, w, a) for a, (n, w) in storages.items())]
        if n >= 1 << 20
    ]
    import tracemalloc

    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        py = snap.filter_traces([tracemalloc.DomainFilter(True, 0)])
        stats = py.statistics("filename")
        out["python_mib"] = sum(s.size for s in stats) / 2**20
        out["python_top"] = [
            f"{s.size / 2**20:.1f} MiB {s.traceback[0].filename}" for s in stats[:10]
        ]
    return out


# -- the child: one viewer launch ---------------------------------------------------------------
def child(args: argparse.Namespace) -> int:
    """Launch the viewer in this process and print one JSON line of timings and RSS."""
    t0 = float(os.environ["FPSM_BENCH_T0"])
    marks: dict[str, Any] = {}
    if args.dump and os.environ.get("FPSM_BENCH_TRACE"):  # bench_memory.py --trace
        import tracemalloc

        tracemalloc.start(1)

    def mark(name: str) -> None:
        marks[name] = {
            "s": time.time() - t0,
            "rss_mib": rss_mib(),
            "anon_mib": rss_mib("RssAnon"),
            "torch": "torch" in sys.modules,
            "timm": "timm" in sys.modules,
        }

    if args.mode == "eager":
        import timm  # noqa: F401
        import torch  # noqa: F401

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.main_window import MainWindow
    from viewer.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    window = MainWindow(args.model, "cpu", index_cache=False, thumbnails=True)
    window.resize(1600, 1000)
    window.show()
    window.open_path(args.film)  # as ``fpsm-viewer FILM`` does, before the event loop runs
    app.processEvents()
    mark("window")

    def on_image(_path: str) -> None:
        window.repaint()
        mark("first_film")

    def on_model(_info: object) -> None:
        mark("model")

    def finish() -> None:
        if "findings" not in marks:
            mark("findings")
            if args.dump:  # bench_memory.py: every mapping and every module, at "findings"
                dump = {
                    "smaps": Path("/proc/self/smaps").read_text(),
                    "modules": sorted(sys.modules),
                    "live": live_memory(),
                }
                Path(args.dump).write_text(json.dumps(dump))
        window.close()
        app.quit()

    def on_result(_result: object) -> None:
        if window.state.cams is not None:
            window.grid_drawn.connect(lambda: QTimer.singleShot(0, finish))
        else:
            QTimer.singleShot(0, finish)

    def on_error(message: str) -> None:
        marks.setdefault("errors", []).append(message)

    window.image_shown.connect(on_image)
    window.model_ready.connect(on_model)
    window.result_shown.connect(on_result)
    window.error_shown.connect(on_error)
    QTimer.singleShot(int(args.timeout * 1000), finish)
    app.exec()
    marks["peak_rss_mib"] = rss_mib("VmHWM")
    print("BENCH " + json.dumps(marks), flush=True)
    return 0


# -- the model alone ---------------------------------------------------------------------------
def model_only(model: Path, film: Path) -> int:
    """RSS of the model alone, loaded and run on a thread as the viewer's inference worker does."""
    import threading

    def work() -> None:
        import timm  # noqa: F401
        import torch

        print(f"after import torch, timm: RSS {rss_mib():.0f} MiB")
        torch.set_num_threads(1)
        from fpsm_core.inference import InferenceService
        from fpsm_core.io import load_image

        t0 = time.perf_counter()
        service = InferenceService(model, device="cpu", batch_size=1)
        print(
            f"model loaded in {time.perf_counter() - t0:.1f} s: RSS {rss_mib():.0f} MiB "
            f"(file-backed {rss_mib('RssFile'):.0f}), peak {rss_mib('VmHWM'):.0f} MiB"
        )
        image = load_image(film)
        t0 = time.perf_counter()
        service.predict([image], cams=True)
        print(
            f"one inference with CAMs in {time.perf_counter() - t0:.1f} s: "
            f"RSS {rss_mib():.0f} MiB, peak {rss_mib('VmHWM'):.0f} MiB"
        )

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return 0


# -- the parent -------------------------------------------------------------------------------
def make_assets(
    work: Path, members: int, backbone: str, size: int, film_side: int, dtype: str = "float32"
) -> tuple[Path, Path]:
    """The ensemble and the film, written once under ``work`` (reused when present)."""
    sys.path.insert(0, str(REPO))
    model_dir = (
        work / f"ens_{backbone}_{members}x{size}"
        if dtype == "float32"
        else work / f"ens_{backbone}_{members}x{size}_{dtype}"
    )
    film = work / f"film_{film_side}.dcm"
    if not (model_dir / "ensemble.json").is_file():
        import torch

        from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble

        paths = []
        for i in range(members):
            torch.manual_seed(i)
            m = create_fpsm(backbone, levels=(4, 3, 2), synthetic_embedding=(i == 1))
            paths.append(
                save_checkpoint(
                    m,
                    model_dir / f"member{i}",
                    name=f"{backbone}-{i}",
                    preprocessing=Preprocessing(input_size=size),
                    untrained=True,
                    dtype=dtype,  # type: ignore[arg-type]
                )
            )
        write_ensemble(model_dir, paths, name=f"{backbone} x{members} (random init)")
    if not film.is_file():
        from bench.bench_viewer import film as film_pixels
        from tests.synthetic_dicom import write_dicom

        write_dicom(film, film_pixels(film_side), window=(2000, 3000))
    return model_dir, film


def launch(
    src: Path,
    mode: str,
    model: Path,
    film: Path,
    timeout: float,
    dump: Path | None = None,
    env_extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    env.update(env_extra or {})
    env["FPSM_BENCH_T0"] = repr(time.time())
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--mode", mode]
    cmd += ["--model", str(model), "--film", str(film), "--timeout", str(timeout)]
    if dump is not None:
        cmd += ["--dump", str(dump)]
    out = subprocess.run(
        cmd, env=env, cwd=src, capture_output=True, text=True, timeout=timeout + 60
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            return dict(json.loads(line[6:]))
    raise SystemExit(f"the {mode} launch of {src} gave no result:\n{out.stderr[-2000:]}")


def time_command(cmd: list[str], repeats: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("lazy", "eager"), default="lazy", help=argparse.SUPPRESS)
    p.add_argument(
        "--model", type=Path, help="checkpoint or ensemble (default: written under --work)"
    )
    p.add_argument("--film", type=Path, help="image to open (default: a 3000x3000 DICOM)")
    p.add_argument("--work", type=Path, default=Path("/tmp/fpsm_bench_startup"))
    p.add_argument("--backbone", default="tresnet_m")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--size", type=int, default=512, help="model input size")
    p.add_argument("--film-side", type=int, default=3000)
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="stored weights"
    )
    p.add_argument("--repeats", type=int, default=5, help="launches per way of starting")
    p.add_argument(
        "--model-only",
        action="store_true",
        help="only load the model and run it once on the film (RSS of the model alone)",
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    p.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also launch the viewer of another source tree (lazy mode), e.g. an older commit",
    )
    args = p.parse_args()
    if args.child:
        return child(args)

    args.work.mkdir(parents=True, exist_ok=True)
    model, film = make_assets(
        args.work, args.members, args.backbone, args.size, args.film_side, args.dtype
    )
    model, film = args.model or model, args.film or film
    if args.model_only:
        sys.path.insert(0, str(REPO))
        return model_only(model, film)
    runs: list[tuple[str, Path, str]] = [
        ("this tree, lazy", REPO, "lazy"),
        ("this tree, eager", REPO, "eager"),
    ]
    for item in args.src:
        label, _, path = item.partition("=")
        runs.append((label, Path(path).resolve(), "lazy"))
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in runs}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits every way alike
        for label, src, mode in runs:
            results[label].append(launch(src, mode, model, film, args.timeout))

    print(f"# bench_startup  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; model {model}; film {film}"
    )
    print(f"medians of {args.repeats} launches each (seconds after launch; RSS in MiB)\n")
    head = "| start | " + " | ".join(f"{p} s" for p in POINTS)
    head += " | " + " | ".join(f"RSS {p}" for p in POINTS) + " | peak RSS | torch at first film |"
    print(head)
    print("|" + "---|" * (2 * len(POINTS) + 3))
    for label, rows in results.items():

        def med(point: str, key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(r[point][key] for r in rows if point in r)

        torch_first = sum(bool(r.get("first_film", {}).get("torch")) for r in rows)
        cells = [f"{med(pt, 's'):.2f}" for pt in POINTS]
        cells += [f"{med(pt, 'rss_mib'):.0f}" for pt in POINTS]
        cells += [f"{statistics.median(r['peak_rss_mib'] for r in rows):.0f}"]
        cells += [f"{torch_first}/{len(rows)}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
        errors = {e for r in rows for e in r.get("errors", [])}
        for e in errors:
            print(f"  ({label}: {e})")

    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    info = time_command(
        [sys.executable, "-m", "fpsm_core.cli", "info", str(film)], args.repeats, env
    )
    bare = time_command([sys.executable, "-c", "pass"], args.repeats, env)
    print(
        f"\nfpsm info {film.name}: median {statistics.median(info):.3f} s "
        f"(bare `python -c pass`: {statistics.median(bare):.3f} s), {args.repeats} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
