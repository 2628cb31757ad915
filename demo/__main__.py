"""Command line: `python -m demo [--checkpoint DIR | --scdm DIR --sdm DIR] [--device] [--port] [--share]`."""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Any

from scdm.cli import ArgumentParser, message, report, run
from scdm.config import Precision


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m demo", description=__doc__)
    p.add_argument("--checkpoint", help="one checkpoint directory (SCDM or SDM; the other gallery stays empty)")
    p.add_argument("--scdm", help="SCDM checkpoint directory or bundled name (default: embedded-scdm)")
    p.add_argument("--sdm", help="SDM checkpoint directory or bundled name (default: embedded-sdm)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for a LAN)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default). On a CPU with two models each samples in its own "
                        "process: Refine runs them one after the other with all the threads, the live images side by "
                        "side with half each")
    p.add_argument("--precision", choices=[v.value for v in Precision], default=None,
                   help="for every request, instead of each card's default (embedded models: auto, bf16 where the "
                        "CPU or GPU computes it natively; official checkpoints: auto-fp16, fp16 on GPUs)")
    p.add_argument("--segmenter", default="auto",
                   help="re-segments every generated image to score it like the bench: 'embedded', a segmenter "
                        "directory or an smp Hub id (bench.segmenter.load_segmenter); 'auto' (default) is the bench's "
                        "segmenter for the checkpoint's dataset when it is on disk (the embedded world's), 'none' off")
    p.add_argument("--concurrency", type=int, default=1, help="generations run at once; others wait in the queue")
    p.add_argument("--tiny", metavar="DIR", help="write random-weight tiny checkpoints to DIR and serve them "
                                                 "(UI development without trained weights)")
    args = p.parse_args(argv)
    if args.checkpoint and (args.scdm or args.sdm):
        p.error("use either --checkpoint or --scdm/--sdm")
    if args.tiny and (args.checkpoint or args.scdm or args.sdm):
        p.error("--tiny replaces the model flags")
    return args


def main(argv: list[str] | None = None) -> int:
    """Load the models and serve the UI; a user error (a bad flag or checkpoint, a busy port) is one line and 2."""
    args = parse_args(argv)
    return run("python -m demo", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    from scdm.pipeline import load_pipeline

    from .app import build_app, launch

    if args.tiny:
        from .tiny import make_tiny_checkpoints

        sources = [str(p) for p in make_tiny_checkpoints(args.tiny)]
    elif args.checkpoint:
        sources = [args.checkpoint]
    else:
        sources = [args.scdm or "embedded-scdm", args.sdm or "embedded-sdm"]
    pipes: list = []
    try:
        pipes = [load_pipeline(s, device=args.device) for s in sources]
        threads = args.threads or torch.get_num_threads()
        torch.set_num_threads(threads)
        plans: dict = {}
        if len(pipes) > 1 and all(p.device.type == "cpu" for p in pipes):
            from .runner import RunPlan
            from .workers import RemotePipeline

            half = max(1, threads // len(pipes))
            pipes = [RemotePipeline(p, threads=half) for p in pipes]  # their own processes, started side by side
            plans = {"refine": RunPlan(side_by_side=False, threads=threads), "live": RunPlan(threads=half)}
            torch.set_num_threads(half)  # this process re-segments one model's images while the other samples
            logging.getLogger("demo").info("torch CPU threads: Refine %d per model, one model after the other; "
                                           "live images %d per model, side by side", threads, half)
        else:
            logging.getLogger("demo").info("torch CPU threads: %d", torch.get_num_threads())
        from scdm.settings import SamplingSettings

        app = build_app(*(pipes + [None] * (2 - len(pipes))), sampling=SamplingSettings(precision=args.precision),
                        concurrency=args.concurrency, segmenter=args.segmenter, **plans)
    except ValueError as e:
        _close(pipes)
        hint = "" if (args.checkpoint or args.scdm or args.sdm or args.tiny) else (
            " (the bundled weights may be missing: pass --checkpoint DIR, or --tiny DIR for random weights)")
        return report("python -m demo", message(e) + hint)
    print(f"models: {', '.join(f'{k}={v}' for k, v in app.handlers.models.names().items())}", flush=True)
    # the re-segmentation model loads (~3 s) while the page starts, not during the first Refine
    threading.Thread(target=_preload, args=(app.handlers.resegmenter,), daemon=True).start()
    try:
        launch(app, host=args.host, port=args.port, share=args.share)
    finally:
        app.handlers.store.cleanup()
        _close(pipes)
    return 0


def _preload(resegmenter: Any) -> None:
    """Load the re-segmentation model now (a background thread of the CLI)."""
    try:
        resegmenter.load()
    except ValueError:  # none for these models: the view says why when asked
        pass


def _close(pipes: list) -> None:
    """Stop the models' sampling processes, if they have any."""
    for p in pipes:
        getattr(p, "close", lambda: None)()


if __name__ == "__main__":
    sys.exit(main())
