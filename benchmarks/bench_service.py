"""Load test of the clinic service on loopback (bounded in users, time and requests).

Starts ``ketaweight serve`` on 127.0.0.1 with a simulated clinic uploaded through the upload page,
then, as 50 concurrent signed-in users browsing pages (start page, monitoring, answers, the patient
list, a random patient, the answer page), measures requests/s and p50/p95/p99 latency in three
phases (users pause 0.5–1.5 s on each page, as people reading do; ``--think 0 0`` for back-to-back
requests): the floor (``/api/health`` only), pages with no job running, and pages while
a weight-study job (with mechanisms) runs in its background process the whole time.  Zero errors
are required.  Prints the machine load (``uptime``) before and after, and the server's peak memory.

    python benchmarks/bench_service.py                 # 20,000 patients, 50 users, 60 s per phase
    python benchmarks/bench_service.py --patients 3000 --seconds 10   # a quick look
    python benchmarks/bench_service.py --workers 2     # ketaweight serve --workers 2

Each phase's line also gives the server processes' CPU time per request (from /proc), and p50/p95 per
page type follow it.

Only loopback is contacted; every loop stops at its deadline.  The server runs with ``--insecure-cookies``
because httpx, unlike browsers, does not send Secure cookies to http://127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_model  # noqa: E402

from ketaweight.app.config import AppConfig  # noqa: E402
from ketaweight.app.db import make_engine, migrate, session_factory  # noqa: E402
from ketaweight.app.users import create_clinic, create_user  # noqa: E402
from ketaweight.pipelines.simulation import run_simulation  # noqa: E402

PASSWORD = "benchmark passphrase 2026"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_pids(pid: int) -> list[int]:
    """The server process and its worker processes (not the job processes nor multiprocessing's tracker)."""
    out = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmd:
            out.append(int(child))
    return out


def cpu_seconds(pids: list[int] | tuple[int, ...]) -> float:
    """User + system CPU time of ``pids`` so far (s)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def page_kind(url: str) -> str:
    if url.startswith("/patients/"):
        return "patient"
    if url.startswith("/runs/"):
        return "answer"
    return {"/": "start", "/patients?alerts=open": "patient list"}.get(url, url.strip("/"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sync_sign_in(client: httpx.Client) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.status_code
    return client.get("/api/me").json()["csrf_token"]


async def async_sign_in(client: httpx.AsyncClient) -> None:
    """Sign in (set-up, not timed: an Argon2 check costs ~0.1 s of CPU, so 50 at once wait long on a busy machine)."""
    page = await client.get("/login", timeout=300)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = await client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token}, timeout=300)
    assert r.status_code == 303, r.status_code


def wait_job(client: httpx.Client, job_id: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not finish in {timeout_s:.0f} s")


async def browse(base: str, urls: list[str], seconds: float, users: int,
                 think_s: tuple[float, float] = (0.0, 0.0), pids: tuple[int, ...] = ()
                 ) -> tuple[list[float], int, list[tuple[str, float]], float]:
    """``users`` signed-in users fetch random ``urls`` until the deadline, pausing a random ``think_s`` (min, max)
    between pages as people reading them do; (latencies s, errors, (page kind, latency s) pairs, CPU seconds of
    ``pids`` from when every user has signed in to the end).  Error statuses are printed."""
    cpu_start: list[float] = []
    latencies: list[float] = []
    kinds: list[tuple[str, float]] = []
    errors = 0
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)

    async def user(i: int) -> None:
        nonlocal errors
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, follow_redirects=False) as client:
            async with sign_in_gate:  # a few at a time
                await async_sign_in(client)
            await barrier.wait()
            if not cpu_start:
                cpu_start.append(cpu_seconds(list(pids)))
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                url = rng.choice(urls)
                t = time.perf_counter()
                try:
                    status: int | str = (await client.get(url)).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                ok = status == 200
                latencies.append(time.perf_counter() - t)
                kinds.append((page_kind(url), latencies[-1]))
                if not ok:
                    errors += 1
                    print(f"  error: GET {url} → {status}", flush=True)
                if think_s[1]:
                    await asyncio.sleep(rng.uniform(*think_s))

    barrier, sign_in_gate = asyncio.Barrier(users), asyncio.Semaphore(4)
    await asyncio.gather(*(user(i) for i in range(users)))
    return latencies, errors, kinds, cpu_seconds(list(pids)) - cpu_start[0]


def summary(name: str, latencies: list[float], errors: int, seconds: float, cpu_s: float | None = None) -> dict:
    """One phase's line; with ``cpu_s`` (the server processes' CPU seconds in the phase) also CPU ms per request."""
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    row = {"phase": name, "requests": len(latencies), "rps": len(latencies) / seconds, "p50_ms": 1000 * q[49],
           "p95_ms": 1000 * q[94], "p99_ms": 1000 * q[98], "errors": errors}
    cpu = f"  server CPU {1000 * cpu_s / len(latencies):5.1f} ms/req" if cpu_s is not None else ""
    print(f"{name:<34} {row['requests']:>7,} req  {row['rps']:>6.1f} req/s  p50 {row['p50_ms']:6.1f} ms  "
          f"p95 {row['p95_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  errors {errors}{cpu}", flush=True)
    return row


def per_kind(kinds: list[tuple[str, float]]) -> None:
    """p50/p95 per page type."""
    by: dict[str, list[float]] = {}
    for kind, latency in kinds:
        by.setdefault(kind, []).append(latency)
    for kind, lat in sorted(by.items()):
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
        print(f"    {kind:<14} {len(lat):>6,} req  p50 {1000 * q[49]:6.1f} ms  p95 {1000 * q[94]:6.1f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    ap.add_argument("--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"),
                    help="seconds a user reads a page before the next (0 0: back to back, a saturation test)")
    ap.add_argument("--workers", type=int, default=1, help="server processes (ketaweight serve --workers)")
    args = ap.parse_args()
    print(f"clinic service load test: {args.patients:,} simulated patients, {args.users} users reading each page "
          f"{args.think[0]:g}-{args.think[1]:g} s, {args.seconds:g} s per phase, {args.workers} server process(es)")
    print(f"machine: {cpu_model()}; before: {uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kw-bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        run_simulation("article", args.patients, 7, tmp / "sim", "csv", False)
        archive = tmp / "clinic.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted((tmp / "sim" / "csv").iterdir()):
                zf.write(p, p.name)
        config = AppConfig(data_dir=tmp / "data")
        config.data_dir.mkdir()
        migrate(config.url)
        engine = make_engine(config.url)
        with session_factory(engine)() as db:
            clinic = create_clinic(db, "Bench clinic")
            create_user(db, "bench", PASSWORD, "admin")
            db.commit()
        engine.dispose()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(tmp / "server.log", "w")
        server = subprocess.Popen([str(Path(sys.executable).with_name("ketaweight")), "serve", "--data", str(config.data_dir),
                                   "--port", str(port), "--insecure-cookies", "--workers", str(args.workers)],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    httpx.get(base + "/api/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            with httpx.Client(base_url=base, timeout=60) as admin:
                csrf = sync_sign_in(admin)
                t = time.perf_counter()
                with open(archive, "rb") as fh:
                    r = admin.post("/upload", follow_redirects=True, data={"csrf_token": csrf, "format": "canonical", "clinic_id": str(clinic.id)},
                                   files={"archive": ("clinic.zip", fh, "application/zip")})
                job_id = int(r.url.path.rsplit("/", 1)[1])
                job = wait_job(admin, job_id, 900)
                assert job["status"] == "done", job
                print(f"upload + validation + load + monitoring of {archive.stat().st_size / 1024**2:.1f} MiB: "
                      f"{time.perf_counter() - t:.1f} s", flush=True)
                t = time.perf_counter()
                first = wait_job(admin, admin.post("/api/jobs", json={"kind": "study"}, headers={"X-CSRF-Token": csrf}).json()["id"], 900)
                assert first["status"] == "done", first
                print(f"first study job (weight + depression + report): {time.perf_counter() - t:.1f} s", flush=True)
                patients = [p["patient_id"] for p in admin.get("/api/patients", params={"only_open": True}).json()][:200]
                urls = ["/", "/monitoring", "/runs", f"/runs/{first['run_id']}", "/patients?alerts=open", "/jobs",
                        *[f"/patients/{p}" for p in patients[:50]]]
                pids = tuple(server_pids(server.pid))
                rows = [summary("floor: /api/health", *asyncio.run(browse(base, ["/api/health"], args.seconds / 4, args.users))[:2],
                                args.seconds / 4)]
                lat, err, kinds, cpu_s = asyncio.run(browse(base, urls, args.seconds, args.users, tuple(args.think), pids))
                rows.append(summary("pages, no job running", lat, err, args.seconds, cpu_s))
                per_kind(kinds)

                # keep a study job (with mechanisms) running through the whole phase
                stop = time.monotonic() + args.seconds + 5
                jobs_run: list[float] = []

                async def keep_busy() -> None:
                    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                        await async_sign_in(c)
                        token = (await c.get("/api/me")).json()["csrf_token"]
                        while time.monotonic() < stop:
                            started = time.perf_counter()
                            j = (await c.post("/api/jobs", json={"kind": "study", "mechanisms": True},
                                              headers={"X-CSRF-Token": token})).json()
                            while (await c.get(f"/api/jobs/{j['id']}")).json()["status"] not in ("done", "failed"):
                                await asyncio.sleep(0.5)
                            jobs_run.append(time.perf_counter() - started)

                async def busy_phase() -> tuple[list[float], int, list[tuple[str, float]], float]:
                    busy = asyncio.create_task(keep_busy())
                    await asyncio.sleep(3)  # the job process has started and is computing
                    out = await browse(base, urls, args.seconds, args.users, tuple(args.think), pids)
                    await busy
                    return out

                lat, err, kinds, cpu_s = asyncio.run(busy_phase())
                rows.append(summary("pages, a study job running", lat, err, args.seconds, cpu_s))
                per_kind(kinds)
                print(f"study jobs with mechanisms during the phase: {len(jobs_run)}, "
                      f"{', '.join(f'{s:.1f}' for s in jobs_run)} s each", flush=True)
            peaks = [peak_rss_mib(p) for p in pids]
            print(f"server peak memory (VmHWM): {sum(peaks):.0f} MiB"
                  + (f" ({' + '.join(f'{m:.0f}' for m in peaks)} MiB: parent and workers)" if len(peaks) > 1 else ""))
        except BaseException:
            log.flush()
            print("server log (last 40 lines):\n" + "\n".join((tmp / "server.log").read_text().splitlines()[-40:]))
            raise
        finally:
            server.send_signal(signal.SIGINT)  # as Ctrl-C: the workers stop with it
            server.wait(timeout=30)
            log.close()
    print(f"after: {uptime()}")
    bad = [r for r in rows if r["errors"]]
    target = rows[-1]["p95_ms"] <= 200
    print(f"target p95 ≤ 200 ms for pages while a study runs: {'met' if target else 'NOT met'} "
          f"({rows[-1]['p95_ms']:.0f} ms); errors: {sum(r['errors'] for r in rows)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
