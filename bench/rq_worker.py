"""Bench-only worker entry: the service's own `python -m worker`, with another RQ worker class or preloading.

python -m bench.rq_worker [--worker-class fork|simple] [--preload] [worker args...]

This changes nothing in worker/: it swaps the RQ class that worker/__main__.py instantiates, to measure
what a change there would buy before anyone makes it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from rq import SimpleWorker, Worker

import worker.__main__ as service_worker


def run_in_process(module: ModuleType) -> list[str]:
    """Make every forking RQ worker class the module uses run jobs in-process, as rq.SimpleWorker does.

    The service may use rq.Worker or its own subclass (settings as class attributes): SimpleWorker goes
    first in the new class's bases, so its execute_job (no fork) wins and the subclass keeps the rest.
    """
    swapped = []
    for name, value in list(vars(module).items()):
        if isinstance(value, type) and issubclass(value, Worker) and not issubclass(value, SimpleWorker):
            setattr(module, name, type(name, (SimpleWorker, value), {}))
            swapped.append(name)
    return swapped


def main(argv: list[str] | None = None) -> int:
    """Run the service's worker main with the chosen class; other arguments pass through to it."""
    parser = argparse.ArgumentParser(prog="python -m bench.rq_worker", description=__doc__)
    parser.add_argument("--worker-class", choices=("fork", "simple"), default="fork")
    parser.add_argument(
        "--preload",
        action="store_true",
        help="import worker.jobs before forking, so each work horse inherits it instead of importing it",
    )
    args, rest = parser.parse_known_args(argv)
    if args.preload:
        importlib.import_module("worker.jobs")
    if args.worker_class == "simple" and not run_in_process(service_worker):
        print("bench.rq_worker: worker/__main__.py uses no rq.Worker class to swap", file=sys.stderr)
        return 2
    return service_worker.main(rest)


if __name__ == "__main__":
    sys.exit(main())
