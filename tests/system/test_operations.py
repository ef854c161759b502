"""Operating it, on real processes: gunicorn's processes counted as one (and recycled without losing or
multiplying counts), each worker's own metrics endpoint, and `python -m worker --check` as a container's
healthcheck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import ROOT, children, free_port, wait_for
from tests.stack import Stack, build_stack, process_gone


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """gunicorn with two processes writing to a metrics directory the test can look into (the workers
    get the same environment, as where one is shared, and must keep out of it)."""
    root = tmp_path_factory.mktemp("operations")
    with build_stack(root, {"PROMETHEUS_MULTIPROC_DIR": str(root / "metrics")}, web_workers=2) as st:
        yield st


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    r = requests.get(url, timeout=5)
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def healthz_count(stack: Stack) -> float:
    assert stack.web is not None
    labels = frozenset({"route": "/healthz", "method": "GET", "status": "200"}.items())
    return samples(stack.web.url + "/metrics").get(("mfa_http_requests_total", labels), 0.0)


def hit(stack: Stack, count: int) -> None:
    """`count` requests at once, on fresh connections, so both gunicorn processes serve some."""
    assert stack.web is not None
    url = stack.web.url + "/healthz"
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: requests.get(url, timeout=5).status_code, range(count)))
    assert codes == [200] * count


def test_a_scrape_of_any_web_process_counts_every_process(stack: Stack) -> None:
    base = healthz_count(stack)
    hit(stack, 40)
    metrics_dir = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    slots = {p.stem.split("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
    served = {slot for slot in slots if not slot.startswith("master")}
    assert len(served) == 2, sorted(metrics_dir.iterdir())  # both processes counted some
    # Whichever process answers the scrape, it sums both: every scrape sees all 40.
    assert {healthz_count(stack) - base for _ in range(6)} == {40}


def test_a_recycled_web_process_keeps_the_counts_and_adds_no_files(stack: Stack) -> None:
    assert stack.web is not None
    before_files = sorted(p.name for p in Path(stack.env["PROMETHEUS_MULTIPROC_DIR"]).iterdir())
    base = healthz_count(stack)
    hit(stack, 20)
    victim = children(stack.web.popen.pid)[0]
    os.kill(victim, signal.SIGKILL)  # a worker gone (as max_requests or a timeout ends one)
    wait_for(lambda: process_gone(victim), 5, "the web worker to die")

    def replaced() -> bool:
        live = children(stack.web.popen.pid)
        return len(live) == 2 and victim not in live

    wait_for(replaced, 30, "gunicorn to replace it")
    hit(stack, 20)
    assert healthz_count(stack) - base == 40  # the dead process's counts still count, once
    after_files = {p.name for p in Path(stack.env["PROMETHEUS_MULTIPROC_DIR"]).iterdir()}
    assert after_files <= set(before_files)  # the replacement took over its predecessor's slot


def test_each_worker_serves_its_own_metrics(stack: Stack) -> None:
    assert stack.api is not None
    port = free_port()
    worker = stack.start_worker(WORKER_METRICS_PORT=str(port))
    s, _ = stack.submitted()
    assert stack.api.wait(s["id"])["status"] == "succeeded"
    found = samples(f"http://127.0.0.1:{port}/metrics")
    calls = frozenset({"operation": "resume", "resource": "links", "status_class": "2xx"}.items())
    assert found[("mfa_upstream_calls_total", calls)] >= 1
    assert found[("mfa_outcomes_total", frozenset({"status": "succeeded", "code": "none"}.items()))] >= 1
    assert ("process_resident_memory_bytes", frozenset()) in found  # the process's own
    # The backlog, read from Redis: live once the worker's sweeper has made its first pass.
    live = ("mfa_workers_live", frozenset())
    wait_for(lambda: samples(f"http://127.0.0.1:{port}/metrics").get(live) == 1, 10, "a first heartbeat")
    assert not list(Path(stack.env["PROMETHEUS_MULTIPROC_DIR"]).glob(f"*_{worker.popen.pid}.db"))
    assert worker.stop() == 0  # a warm shutdown leaves the live count at once
    assert stack.web is not None
    assert samples(stack.web.url + "/metrics")[("mfa_workers_live", frozenset())] == 0


def run_check(heartbeat_file: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "--check", *args],
        cwd=ROOT,
        env={**os.environ, "WORKER_HEARTBEAT_FILE": heartbeat_file},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_worker_check_follows_the_worker(stack: Stack) -> None:
    """Healthy while it runs; unhealthy the moment it is killed, not when its heartbeat ages."""
    worker = stack.start_worker()
    heartbeat = worker.extra["heartbeat_file"]
    wait_for(lambda: run_check(heartbeat).returncode == 0, 10, "a first heartbeat")
    done = run_check(heartbeat)
    assert done.returncode == 0 and done.stdout.startswith("worker healthy"), done.stdout + done.stderr
    assert run_check(heartbeat, "--max-age", "0").returncode == 1  # too old for a zero allowance
    stack.kill_machine(worker)
    done = run_check(heartbeat)
    assert done.returncode == 1 and "no running worker" in done.stdout, done.stdout
    assert run_check(str(Path(heartbeat).with_name("none"))).returncode == 1
