"""Command line: `python -m demo [--checkpoint DIR | --scdm DIR --sdm DIR] [--device] [--port] [--share]`."""
from __future__ import annotations

import argparse
import logging
import sys

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
                   help="torch CPU threads (0 = auto: torch's default, split between the two models on a CPU, since "
                        "they sample side by side)")
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
    try:
        pipes = [load_pipeline(s, device=args.device) for s in sources]
        if args.threads:
            torch.set_num_threads(args.threads)
        elif len(pipes) > 1 and all(p.device.type == "cpu" for p in pipes):  # one share of the cores per model
            torch.set_num_threads(max(1, torch.get_num_threads() // len(pipes)))
        logging.getLogger("demo").info("torch CPU threads: %d", torch.get_num_threads())
        from scdm.settings import SamplingSettings

        app = build_app(*(pipes + [None] * (2 - len(pipes))), sampling=SamplingSettings(precision=args.precision),
                        concurrency=args.concurrency, segmenter=args.segmenter)
    except ValueError as e:
        hint = "" if (args.checkpoint or args.scdm or args.sdm or args.tiny) else (
            " (the bundled weights may be missing: pass --checkpoint DIR, or --tiny DIR for random weights)")
        return report("python -m demo", message(e) + hint)
    print(f"models: {', '.join(f'{k}={v}' for k, v in app.handlers.models.names().items())}", flush=True)
    try:
        launch(app, host=args.host, port=args.port, share=args.share)
    finally:
        app.handlers.store.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
