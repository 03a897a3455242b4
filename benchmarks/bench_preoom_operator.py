"""Benchmark: pre-OOM snapshots with the operator in the loop (the real test cluster, kopf, S3).

On the machine's test cluster (hack/cluster: kube-apiserver, metrics-server, the real kubelet;
shared with test sessions through tests/support/kube's lock), in a namespace of its own, the
operator runs under kopf as the chart's ServiceAccount with the chart's RBAC and S3 on moto as
its archive; benchmarks/operator_preoom_scenario.py leaks one pod per run to its kernel OOM
kill. Writes, per leak speed, how many runs had a pre-OOM snapshot at >= 80 % of the limit,
and what the operator read and captured in each run, to the `<!-- bench:preoom-operator -->`
section of RESULTS.md. The operator samples at the CRD's default 15 s.

    .venv/bin/python benchmarks/bench_preoom_operator.py [--repeat 3] [--speeds 60,20,5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the cluster, the fixtures' images, moto

from bench_analysis import machine_line, update_results  # noqa: E402
from operator_preoom_scenario import Bench, kept, one_run  # noqa: E402

from oomforensics.archive.store import Archive  # noqa: E402
from tests.e2e.operator_harness import apply_crd, kube_namespace, running_operator  # noqa: E402
from tests.support.kube.cluster import (  # noqa: E402
    ClusterUnavailable,
    KubeCluster,
    shared_cluster,
)
from tests.support.kube.images import fixture_image  # noqa: E402
from tests.support.kube.operator_access import operator_kubeconfig  # noqa: E402
from tests.support.moto import MotoServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
JSON = dict[str, Any]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speeds", default="60,20,5")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument(
        "--out", type=Path, help="also keep every run as JSON lines here (default: a temp file)"
    )
    args = parser.parse_args(argv)
    speeds = [float(s) for s in args.speeds.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="oomf-bench-")) / "runs.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The operator's own log (kopf runs in this process), beside the runs: what it did.
    logging.basicConfig(
        filename=out.with_name("operator.log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    load = os.getloadavg()
    tree = source_tree()  # the operator under test is this process's import of it
    started = time.monotonic()
    print(f"bench_preoom_operator: {args.repeat} x {args.speeds} s -> {out.parent}", flush=True)
    try:
        rows = asyncio.run(bench(args.repeat, speeds, out))
    except ClusterUnavailable as exc:
        print(f"bench_preoom_operator: no test cluster: {exc}", file=sys.stderr)
        return 2
    section = render(args, rows, time.monotonic() - started, load, os.getloadavg(), tree)
    print(section)
    if not args.no_write and rows:
        update_results(RESULTS, "preoom-operator", section)
    return 0 if all(r["outcome"] == "killed" for r in rows) else 1


async def bench(repeat: int, speeds: Sequence[float], out: Path) -> list[JSON]:
    """Every run, in order (60, 20, 5 s, then again), with one operator for them all."""
    rows: list[JSON] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    with (
        shared_cluster() as kube,
        MotoServer() as s3,
        kube_namespace(kube, "bench-preoom") as namespace,
        tempfile.TemporaryDirectory(prefix="oomf-bench-") as scratch,
    ):
        image = fixture_image(kube, "leaky")
        prefix = f"bench-{namespace}"
        with operator_environment(kube, s3, namespace, prefix, Path(scratch)):
            archive = Archive.from_url(
                s3.archive_url(prefix), credentials=s3.credentials, options=s3.options
            )
            async with kube.async_http() as http:
                await apply_crd(http)
                async with running_operator([namespace]) as operator:
                    shared = Bench(http, namespace, image, archive, operator)
                    for index in range(repeat):
                        for speed in speeds:
                            result = await one_run(shared, f"leak-{speed:g}s-{index}", speed)
                            rows.append(result)
                            with out.open("a") as file:
                                file.write(json.dumps(result) + "\n")
                            print(json.dumps(result), flush=True)
    return rows


@contextmanager
def operator_environment(
    kube: KubeCluster, s3: MotoServer, namespace: str, prefix: str, scratch: Path
) -> Iterator[None]:
    """The operator's environment while the block runs (kopf runs in this process): the
    chart's ServiceAccount token for `namespace`, S3 on moto as the default archive."""
    kubeconfig, _ = operator_kubeconfig(
        kube, scratch / "operator.kubeconfig", watch_namespaces=[namespace]
    )
    wanted = {
        "KUBECONFIG": str(kubeconfig),
        "OOMF_STORAGE_URL": s3.archive_url(prefix),
        "OOMF_STORAGE_OPTIONS": ",".join(f"{k}={v}" for k, v in s3.options.items()),
        "AWS_ACCESS_KEY_ID": s3.credentials["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": s3.credentials["secret_access_key"],
        "OOMF_SPOOL_DIR": str(scratch / "spool"),
        "OOMF_NAMESPACES": namespace,
        "OOMF_METRICS_PORT": "0",  # other sessions' operators may hold the default port
    }
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the report -----------------------------------------------------------------------------


def render(
    args: argparse.Namespace,
    rows: list[JSON],
    elapsed: float,
    load: tuple[float, float, float],
    load_end: tuple[float, float, float],
    tree: str,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    missed = [r for r in rows if r["outcome"] != "killed"]
    lines = [
        "<!-- bench:preoom-operator -->",
        "## Pre-OOM snapshots with the operator in the loop",
        "",
        f"`.venv/bin/python benchmarks/bench_preoom_operator.py --repeat {args.repeat} "
        f"--speeds {args.speeds}`, {now}, {elapsed:.0f} s in all, the operator of {tree}"
        + (f"; **{len(missed)} run(s) without a recorded kill**" if missed else "")
        + ".",
        "",
        f"Machine: {machine_line()}. Load average (1, 5, 15 min) at the start "
        f"{_load(load)}, at the end {_load(load_end)}: the 2 cores were shared with the test "
        "cluster (etcd, kube-apiserver, controller-manager, scheduler, metrics-server, "
        "containerd, the kubelet), moto, the operator in this process and other sessions' "
        "tests.",
        "",
        "Each run: a pod of the leaky fixture (`-mode mapcache`, the leak begins at start, "
        "128 MiB limit) on the test cluster's real kubelet (a real memory cgroup, a real kernel "
        "OOM kill), a MemoryInvestigation with the CRD's defaults (15 s sampling, thresholds "
        "80/90/95 %, predicted within 120 s), the operator under kopf as the chart's "
        "ServiceAccount, snapshots to S3 on moto; the working set from the real metrics-server "
        "(`--metric-resolution 10s`). Counted: the OOM kill's `preOomSnapshot` in the status "
        "was taken at >= 80 % of the limit (the operator's reading when it captured). The "
        "fixture's own RSS, read by the benchmark every 0.5 s, shows what that reading missed.",
        "",
        "| speed (50->100 %) | runs | kill recorded | pre-OOM snapshot >= 80 % | its % of limit "
        "(operator's reading): median (min-max) | fixture's RSS then, median | PodMetrics "
        "windows before the kill, median | pod created -> kill recorded, median |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for speed in sorted({r["speed"] for r in rows}, reverse=True):
        group = [r for r in rows if r["speed"] == speed]
        percents = [r["percentOfLimit"] for r in group if r["percentOfLimit"] is not None]
        span = (
            f"{statistics.median(percents):.1f} % ({min(percents):.1f}-{max(percents):.1f} %)"
            if percents
            else "-"
        )
        rss = [r["preOomRssPercent"] for r in group if r["preOomRssPercent"] is not None]
        times = [r["startToKillSeconds"] for r in group if r["startToKillSeconds"] is not None]
        windows = [r["podMetricsWindows"] for r in group]
        recorded = sum(r["outcome"] == "killed" for r in group)
        lines.append(
            f"| {speed:g} s | {len(group)} | {recorded}/{len(group)} | "
            f"{sum(kept(r) for r in group)}/{len(group)} | {span} | "
            + (f"{statistics.median(rss):.1f} %" if rss else "-")
            + f" | {statistics.median(windows):g} | "
            + (f"{statistics.median(times):.1f} s" if times else "-")
            + " |"
        )
    lines += ["", "<details><summary>Every run</summary>", ""]
    lines += [_run_line(r) for r in rows]
    lines += ["", "</details>", "<!-- /bench:preoom-operator -->"]
    return "\n".join(lines)


def _run_line(result: JSON) -> str:
    taken = ", ".join(
        f"{c['reason']} at {c.get('at')} s: {c.get('percent')} % (RSS {c.get('rssPercent')} %)"
        if "error" not in c
        else f"{c.get('reason', '?')}: {c['error']}"
        for c in result["captures"]
    )
    text = (
        f"- {result['name']} (`-rate {result['rate']}`): "
        + ("kill recorded" if result["outcome"] == "killed" else f"**{result['outcome']}**")
        + (
            f" {result['startToKillSeconds']} s after the pod's creation"
            + (
                f", {result['killToRecordedSeconds']} s after the kubelet's finishedAt"
                if result["killToRecordedSeconds"] is not None
                else ""
            )
            if result["startToKillSeconds"] is not None
            else ""
        )
        + f"; pre-OOM {result['preOomSnapshot'] or 'none'} ({result['percentOfLimit']} %)"
        + f"; captures: {taken or 'none'}"
        + f"; PodMetrics before the kill: {result['podMetricsPercents']} %"
        + f"; fixture's peak RSS {result['peakRssPercent']} %"
    )
    if not kept(result) and "lastSeen" in result:
        text += f"\n  - last seen: `{json.dumps(result['lastSeen'], default=str)}`"
    return text


def source_tree() -> str:
    """The commit the operator's code is from, and whether operator/ had changes beside it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "an unknown commit"
    changed = git("status", "--porcelain", "--", "operator/")
    return f"commit {commit}" + (" with uncommitted changes in operator/" if changed else "")


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
