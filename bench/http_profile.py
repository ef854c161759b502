"""py-spy over one more wrk run of the service and of its baseline: where the extra CPU per request goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.load import LoadResult
from bench.profile import compare, own_code_ms, profiled, share_with
from devstack.processes import Proc

IMPORT_FRAME = "_find_and_load"


@dataclass
class HttpProfile:
    """Each function's share of GIL-held samples, scaled by the run's measured server CPU per request."""

    service_ms: float  # server CPU ms per request (/proc) during the profiled run
    baseline_ms: float
    samples: tuple[int, int]  # GIL-held samples behind the shares: service, baseline
    imports: tuple[float, float]  # share of samples importing modules: a recycled gunicorn worker
    extra: list[tuple[str, float, float]]  # (function, service ms, baseline ms) of own time
    own_code: list[tuple[str, float]]  # the service's app/ functions, inclusive ms per request
    raw: tuple[Path, Path]


def profile_pair(run: Callable[[str], LoadResult], web: Proc, base: Proc, out: Path) -> HttpProfile:
    """`run(side)` once more for "service" and "baseline", each under py-spy."""
    svc, svc_prof = profiled(web.popen.pid, out / "service", lambda: run("service"))
    bas, bas_prof = profiled(base.popen.pid, out / "baseline", lambda: run("baseline"))
    svc_ms, bas_ms = svc.cpu_ms_per_request, bas.cpu_ms_per_request
    return HttpProfile(
        service_ms=svc_ms,
        baseline_ms=bas_ms,
        samples=(svc_prof.samples, bas_prof.samples),
        imports=(share_with(svc_prof.raw, IMPORT_FRAME), share_with(bas_prof.raw, IMPORT_FRAME)),
        extra=compare(svc_prof.raw, svc_ms, bas_prof.raw, bas_ms),
        own_code=own_code_ms(svc_prof.raw, svc_ms),
        raw=(svc_prof.raw, bas_prof.raw),
    )
