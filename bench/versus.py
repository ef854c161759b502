"""`python -m bench.versus REV [--rounds N] [--seconds S]`: this tree's HTTP figures against an earlier
commit's, in paired rounds.

"Not worse than before" is hard to judge from a few runs on this shared 2-core machine: the same
server's CPU per request moves by 10-30% from one 10 s run to the next. Here every round runs the two
back to back, the order flipping from round to round (before-after, after-before, ...), so a drift in
machine load reaches both sides of a round nearly alike; a figure is the median over the rounds of that
round's ratio. (Loading the two at once, as the telemetry phase does for one server in three settings,
would not be fair here: the kernel shares CPU per thread, and a gthread server has more threads to
claim it with than a gevent one.)

Each side runs as its own commit runs it: its own gunicorn.conf.py (worker class included), its own
bench settings (`bench.stack.service_env`: no rate limits, no line per request), sessions seeded by its
own code, and a Redis of its own (the two may store sessions differently). No RQ worker runs: the token
POSTs' jobs wait in their queues, as in the HTTP phase. The commit is checked out in a scratch worktree
under bench/out/ and removed at the end. Writes bench/out/versus-<rev>.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from bench import paired
from bench.http import ROUTES
from bench.load import LoadResult, ensure_wrk, run_wrk
from bench.paired import Round
from bench.stack import API_KEY, WEB_CONNECTIONS, WEB_WORKERS, Stack, running
from devstack.processes import PYTHON, ROOT, Proc, free_port, spawn, wait_for
from mfa.settings import WEB_WITHHELD  # this tree's list: a name an older commit lacks is simply absent

HERE = Path(__file__).resolve().parent
SIDES = ("before", "after")
FRESH_RPS = 2500  # token sessions seeded per second of a run (bench.http.MAX_TOKEN_RPS)
_ENV = "import json, sys; from bench.stack import service_env; print(json.dumps(service_env(*sys.argv[1:3])))"
_SEED = (
    "import sys; from pathlib import Path; from redis import Redis; from bench.seed import seed_sessions, "
    "write_ids; write_ids(seed_sessions(Redis.from_url(sys.argv[1]), int(sys.argv[2])), Path(sys.argv[3]))"
)


class Side:
    """One commit's server on a Redis of its own, and how to seed it."""

    def __init__(
        self,
        stack: Stack,
        name: str,
        tree: Path,
        seconds: float,
        conns: int,
        over: dict[str, str] | None = None,
    ) -> None:
        self.name, self.tree, self.seconds, self.conns = name, tree, seconds, conns
        self.out = stack.root / "wrk"
        self.redis = stack.redis(f"redis-{name}", aof=True)  # as the HTTP phase runs it
        raw = self._python(_ENV, self.redis.url, "http://127.0.0.1:9")  # no worker runs: Belvo is not called
        env = {
            **json.loads(raw),
            **(over or {}),
            "WEB_CONCURRENCY": str(WEB_WORKERS),
            "WEB_CONNECTIONS": str(WEB_CONNECTIONS),
            "PORT": str(free_port()),
            "WEB_BIND_HOST": "127.0.0.1",
        }
        self.api_key = env["API_KEYS"].split(",")[0]  # the commit's own bench key (their lengths differ)
        argv = [PYTHON, "-m", "gunicorn", "--config", str(tree / "gunicorn.conf.py"), "app:create_app()"]
        self.proc: Proc = stack.track(
            spawn(f"web-{name}", argv, stack.logs, env, withheld=WEB_WITHHELD, cwd=tree)
        )
        self.proc.url = f"http://127.0.0.1:{env['PORT']}"
        wait_for(self._healthy, 60, f"{name} /healthz")
        self.read_ids = self.seed(1000, "read")

    def _python(self, code: str, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "-c", code, *args],
            cwd=self.tree,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {code.split(';')[1]} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def _healthy(self) -> bool:
        if not self.proc.alive:
            raise RuntimeError(f"{self.proc.name} exited:\n{self.proc.log_text()[-3000:]}")
        return requests.get(self.proc.url + "/healthz", timeout=1).ok

    def seed(self, count: int, label: str) -> Path:
        path = self.out / f"{self.name}-{label}-ids.txt"
        self._python(_SEED, self.redis.url, str(count), str(path))
        return path

    def prepare(self, figure: str, label: str) -> Callable[[], LoadResult]:
        """Seed what the run needs now; return the wrk run, to be started together with the other side's."""
        route = ROUTES[figure]
        ids, once = (self.read_ids, False) if route.ids == "read" else (None, False)
        if route.ids == "fresh":
            ids, once = self.seed(int(FRESH_RPS * self.seconds), f"{figure}-{label}"), True

        def start() -> LoadResult:
            result = run_wrk(
                self.proc.url,
                name=f"{figure}-{self.name}-{label}",
                out_dir=self.out,
                seconds=self.seconds,
                conns=self.conns,
                method=route.method,
                path=route.service_path,
                ids_file=ids,
                once=once,
                body=route.body,
                auth=f"Bearer {self.api_key}" if route.auth == f"Bearer {API_KEY}" else route.auth,
                server_pid=self.proc.popen.pid,
            )
            if result.failed:
                raise RuntimeError(f"{result.name}: errors {result.errors}; see {self.out}")
            if once and result.requests > FRESH_RPS * self.seconds:
                raise RuntimeError(f"{result.name} outran its sessions: raise FRESH_RPS")
            return result

        return start


def compare(
    rev: str, rounds: int, seconds: float, conns: int, figures: tuple[str, ...], after_env: dict[str, str]
) -> str:
    """Every HTTP figure, `rounds` paired rounds; the report as Markdown."""
    scratch = HERE / "out" / time.strftime(f"versus-%Y%m%d-%H%M%S-{rev}")
    tree = scratch / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True)
    try:
        with running(scratch) as stack:
            sides = {
                "before": Side(stack, "before", tree, seconds, conns),
                "after": Side(stack, "after", ROOT, seconds, conns, after_env),
            }
            results: dict[str, list[Round]] = {}
            for figure in figures:
                results[figure] = []
                for i in range(rounds):
                    order = SIDES if i % 2 == 0 else SIDES[::-1]
                    found = {name: sides[name].prepare(figure, str(i))() for name in order}
                    results[figure].append(found)
                    print(f"  {figure} round {i}: {paired.describe(found)}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return report(rev, results, seconds, conns, after_env)


def report(
    rev: str,
    results: dict[str, list[Round]],
    seconds: float,
    conns: int,
    after_env: dict[str, str],
) -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    lines = [
        f"# HTTP figures: {rev} (before) against {head.stdout.strip()} (after), paired rounds",
        "",
        f"`python -m bench.versus {rev}`: {len(next(iter(results.values())))} paired rounds of {seconds:g} s "
        f"per figure, `wrk -c{conns}`, the sides back to back in alternating order. Ratios are after over "
        "before, median over the rounds of each round's ratio; the req/s and CPU columns are each side's own "
        "median."
        + (
            f" The after side ran with {', '.join(f'`{k}={v}`' for k, v in after_env.items())}."
            if after_env
            else ""
        ),
        "",
        "| route | req/s before | req/s after | req/s after/before | CPU/request before | CPU/request after "
        "| CPU after/before |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for figure, rounds in results.items():
        before, after = (
            (paired.median(rounds, side, paired.rps), paired.median(rounds, side, paired.cpu_ms))
            for side in SIDES
        )
        rps_ratio = paired.median_ratio(rounds, "after", "before", paired.rps)
        cpu_ratio = paired.median_ratio(rounds, "after", "before", paired.cpu_ms)
        lines.append(
            f"| {ROUTES[figure].method} {ROUTES[figure].service_path} | {before[0]:,.0f} | {after[0]:,.0f} "
            f"| {rps_ratio:.2f}x | {before[1]:.3f} ms | {after[1]:.3f} ms | {cpu_ratio:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__)
    parser.add_argument("rev", help="the earlier commit (before)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--conns", type=int, default=32, help="wrk connections (the HTTP phase's)")
    parser.add_argument(
        "--only", default=",".join(ROUTES), help=f"comma-separated subset of {','.join(ROUTES)}"
    )
    parser.add_argument(
        "--after-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the after side's web",
    )
    args = parser.parse_args(argv)
    after_env = dict(item.split("=", 1) for item in args.after_env)
    ensure_wrk()
    text = compare(args.rev, args.rounds, args.seconds, args.conns, tuple(args.only.split(",")), after_env)
    out = HERE / "out" / f"versus-{args.rev}.md"
    out.write_text(text)
    print(text)
    print(f"written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
