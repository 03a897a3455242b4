"""A kubelet for the test cluster: pods in the front become real processes in memory cgroups.

For every pod in the front's store (bound to this node, or unbound: it binds them, standing
in for the scheduler) it runs each container's `command` + `args` with its `env` as a process
in a child memory cgroup limited to `resources.limits.memory` (no limit: the machine's
memory), and publishes what the real kubelet publishes:

- `status`: phase, conditions (PodReadyToStartContainers, Initialized, Ready,
  ContainersReady, PodScheduled), hostIP/podIP 127.0.0.1, startTime, qosClass and
  `containerStatuses[]` (name, image, imageID, containerID `containerd://<hex>`, ready,
  started, restartCount, state, lastState);
- PodMetrics (the front's metrics.k8s.io) every `metrics_interval` seconds: the cgroup's
  working set (usage - total_inactive_file) and CPU;
- restarts per `restartPolicy` with the kubelet's back-off (first restart at once, then
  `backoff_initial` doubling to `backoff_max`, state `waiting: CrashLoopBackOff` meanwhile).
  A kernel OOM kill (the cgroup's oom_kill counter) shows as `terminated` with reason
  OOMKilled and exit code 137; other exits as Error (or Completed for 0). The state passes
  through `terminated` (restartCount unchanged) before the restart, as on a node. Each run
  gets a new cgroup (its OOM counter starts at 0), as containerd makes a new container.

Deleting a pod marks it (the front's graceful deletion while a kubelet is attached): the
kubelet sends SIGTERM, waits up to the grace period, SIGKILLs, removes the cgroups and
then deletes the pod for good. Stopping the kubelet kills every process it started.

Ports (all containers share 127.0.0.1): a declared port with `containerPort: 0` is given a
free loopback port when the pod is created (an admission step the kubelet installs in the
front), so every client sees the real port in `spec.containers[].ports[].containerPort` and
in the annotation `kubelet.test/port-<container>` (the container's first port). The process
gets `PORT` (first port) and `PORT_<NAME>` (named ports, upper case, `-` as `_`) in its
environment, and `$(VAR)` references in command, args and env values expand as Kubernetes
expands them (`$$` escapes). Logs: `pods/log` through the front (`?previous=true` too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pytest

from oomforensics.local.cgroup import CgroupError, MemoryCgroup
from oomforensics.quantity import InvalidQuantity, parse_memory
from tests.support.cluster.front import (
    PODS,
    ApiError,
    ClusterFront,
    ContainerUsage,
    Resource,
    Watch,
    now_rfc3339,
)

JSON = dict[str, Any]

PORT_ANNOTATION = "kubelet.test/port-{container}"
NODE_IP = "127.0.0.1"
SIGKILL_EXIT = 128 + signal.SIGKILL
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((NODE_IP, 0))
        return int(sock.getsockname()[1])


def machine_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise CgroupError("no MemTotal in /proc/meminfo")


def cgroups_available() -> str | None:
    """None when this process can make limited memory cgroups; else the reason it cannot."""
    try:
        cgroup = MemoryCgroup.create_child(f"kubelet-probe-{os.getpid()}", 64 * 2**20)
        cgroup.remove()
    except (CgroupError, OSError) as exc:
        return str(exc)
    return None


def assign_ports(resource: Resource, pod: JSON) -> bool:
    """Admission: give `containerPort: 0` a free port and annotate it. True if it changed."""
    if resource is not PODS:
        return False
    changed = False
    annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
    for container in (pod.get("spec") or {}).get("containers") or []:
        if not isinstance(container, dict):
            continue
        ports = container.get("ports") or []
        for port in ports:
            if isinstance(port, dict) and not port.get("containerPort"):
                port["containerPort"] = free_port()
                changed = True
        if ports and isinstance(ports[0], dict) and "name" in container:
            key = PORT_ANNOTATION.format(container=container["name"])
            value = str(ports[0]["containerPort"])
            if annotations.get(key) != value:
                annotations[key] = value
                changed = True
    if not annotations:
        del pod["metadata"]["annotations"]
    return changed


def _admit(resource: Resource, pod: JSON) -> None:
    assign_ports(resource, pod)


def _field(pod: JSON, path: str) -> str:
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path):
        return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
    value: Any = pod
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


@dataclass(slots=True)
class _Run:
    """One process of a container: a container ID, a cgroup, a log file."""

    container_id: str
    process: asyncio.subprocess.Process
    cgroup: MemoryCgroup
    started_at: str
    log: Path
    started_monotonic: float
    cpu_seen: tuple[float, int] | None = None  # (monotonic time, CPU nanoseconds)


class ContainerRunner:
    """One container of a pod: its runs, restarts and the status the kubelet reports."""

    def __init__(self, worker: PodWorker, spec: JSON) -> None:
        self.worker = worker
        self.spec = spec
        self.name: str = spec["name"]
        self.image = str(spec.get("image", ""))
        repository = self.image.rsplit(":", 1)[0] if "/" in self.image else self.image
        digest = hashlib.sha256(self.image.encode()).hexdigest()
        self.image_id = f"{repository}@sha256:{digest}"
        self.restart_count = 0
        self.state: JSON = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JSON = {}
        self.ready = False
        self.started = False
        self.ever_started = False
        self.exit_codes: list[int] = []
        self.finished = False  # no more restarts
        self.run: _Run | None = None
        self.previous_log: Path | None = None
        self.stopping = False
        self._stopped = asyncio.Event()  # ends a back-off early

    @property
    def limit(self) -> int:
        memory = ((self.spec.get("resources") or {}).get("limits") or {}).get("memory")
        return parse_memory(str(memory)) if memory is not None else machine_memory()

    def status(self) -> JSON:
        status: JSON = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id if self.ever_started else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.run is not None:
            status["containerID"] = self.run.container_id
        return status

    # -- running --

    def _environment(self, pod: JSON) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "HOSTNAME": pod["metadata"]["name"],
        }
        declared: JSON = {}
        ports = self.spec.get("ports") or []
        if ports:
            declared["PORT"] = str(ports[0]["containerPort"])
        for port in ports:
            if port.get("name"):
                key = "PORT_" + str(port["name"]).upper().replace("-", "_")
                declared[key] = str(port["containerPort"])
        env.update(declared)
        for item in self.spec.get("env") or []:
            source = item.get("valueFrom") or {}
            if "value" in item:
                value = expand(str(item["value"]), env)
            elif "fieldRef" in source:
                value = _field(pod, source["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in source:
                ref = source["resourceFieldRef"]
                kind, _, name = str(ref["resource"]).partition(".")
                quantity = ((self.spec.get("resources") or {}).get(kind) or {}).get(name)
                value = str(parse_memory(str(quantity))) if quantity and name == "memory" else ""
            else:
                value = ""
            env[item["name"]] = value
        return env

    async def _spawn(self, pod: JSON) -> _Run:
        env = self._environment(pod)
        argv = [
            expand(str(a), env) for a in [*self.spec.get("command", []), *self.spec.get("args", [])]
        ]
        if not argv:
            raise _CannotRun(
                "the test kubelet runs `command` + `args` (it has no images to take them from)"
            )
        kubelet = self.worker.kubelet
        try:
            cgroup = MemoryCgroup.create_child(
                f"kubelet-{self.worker.uid}-{self.name}-{self.restart_count}", self.limit
            )
        except (CgroupError, InvalidQuantity) as exc:
            raise _CannotRun(str(exc)) from None
        log = self.worker.log_dir / self.name / f"{self.restart_count}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        procs = cgroup.path / "cgroup.procs"

        def join_cgroup() -> None:  # in the child, before exec: it starts inside the limit
            procs.write_text(str(os.getpid()))

        out: IO[bytes]
        with log.open("ab") as out:
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=self.spec.get("workingDir") or kubelet.workdir,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    preexec_fn=join_cgroup,
                    start_new_session=True,
                )
            except OSError as exc:
                await _remove_cgroup(cgroup)
                raise _CannotRun(f"{argv[0]}: {exc.strerror or exc}") from None
        container_id = "containerd://" + secrets.token_hex(32)
        return _Run(container_id, process, cgroup, now_rfc3339(), log, time.monotonic())

    async def loop(self) -> None:
        """Run, watch, restart: until the restart policy says stop or the pod goes."""
        policy = (self.worker.pod["spec"] or {}).get("restartPolicy", "Always")
        kubelet = self.worker.kubelet
        failures = 0
        while not self.stopping:
            try:
                run = await self._spawn(self.worker.pod)
            except _CannotRun as exc:
                self.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
                self.worker.publish()
                return
            if self.run is not None:
                self.previous_log = self.run.log
            self.run = run
            self.ever_started = self.started = True
            self.state = {"running": {"startedAt": run.started_at}}
            self.worker.publish()
            readiness = asyncio.create_task(self._await_ready(run))
            code = await run.process.wait()
            readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readiness
            terminated = self._terminated(run, code)
            await _remove_cgroup(run.cgroup)
            self.ready = self.started = False
            self.state = {"terminated": terminated}
            self.exit_codes.append(terminated["exitCode"])
            restart = policy == "Always" or (policy == "OnFailure" and terminated["exitCode"] != 0)
            if self.stopping or not restart:
                self.finished = True
                self.worker.publish()
                return
            self.worker.publish()  # terminated, restartCount unchanged: as the kubelet's PLEG
            ran_for = time.monotonic() - run.started_monotonic
            # The kubelet forgets a back-off that has not been needed for twice its maximum.
            failures = 1 if ran_for > 2 * kubelet.backoff_max else failures + 1
            delay = (
                0.0
                if failures <= 1
                else min(kubelet.backoff_initial * 2 ** (failures - 2), kubelet.backoff_max)
            )
            self.last_state = {"terminated": terminated}
            if delay > 0:
                self.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container={self.name} "
                        f"pod={self.worker.name}_{self.worker.namespace}({self.worker.uid})",
                    }
                }
                self.worker.publish()
                with contextlib.suppress(TimeoutError):  # the back-off, unless stopped
                    await asyncio.wait_for(self._stopped.wait(), delay)
                if self.stopping:
                    self.finished = True
                    return
            self.restart_count += 1

    def _terminated(self, run: _Run, code: int) -> JSON:
        exit_code = 128 - code if code < 0 else code
        try:
            oom_killed = run.cgroup.oom_kills() > 0
        except CgroupError:
            oom_killed = False
        if oom_killed:
            reason = "OOMKilled"
        elif exit_code == 0:
            reason = "Completed"
        else:
            reason = "Error"
        return {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": run.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": run.container_id,
        }

    async def _await_ready(self, run: _Run) -> None:
        """Ready when the readiness probe (or the first declared port) answers."""
        probe = self.spec.get("readinessProbe") or {}
        ports = self.spec.get("ports") or []
        port: int | None = int(ports[0]["containerPort"]) if ports else None
        path: str | None = None
        if "httpGet" in probe:
            port, path = (
                self._probe_port(probe["httpGet"].get("port")),
                probe["httpGet"].get("path", "/"),
            )
        elif "tcpSocket" in probe:
            port = self._probe_port(probe["tcpSocket"].get("port"))
        while port is not None and run.process.returncode is None:
            if await _answers(port, path):
                break
            await asyncio.sleep(0.1)  # probe period
        if run.process.returncode is None:
            self.ready = True
            self.worker.publish()

    def _probe_port(self, port: Any) -> int | None:
        if isinstance(port, int):
            return port
        for declared in self.spec.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        return int(port) if str(port).isdigit() else None

    async def stop(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        self.stopping = True
        self._stopped.set()
        run = self.run
        if run is None or run.process.returncode is not None:
            return
        _signal_group(run.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(run.process.wait()), grace)
        except TimeoutError:
            _signal_group(run.process.pid, signal.SIGKILL)
            await run.process.wait()

    def kill_now(self) -> None:
        self.stopping = True
        self._stopped.set()
        if self.run is not None and self.run.process.returncode is None:
            _signal_group(self.run.process.pid, signal.SIGKILL)

    def usage(self) -> ContainerUsage | None:
        run = self.run
        if run is None or run.process.returncode is not None:
            return None
        try:
            memory = run.cgroup.working_set()
            pids = run.cgroup.processes()
        except CgroupError:
            return None
        used = sum(_cpu_nanoseconds(pid) for pid in pids)
        now = time.monotonic()
        cores = 0
        if run.cpu_seen is not None and now > run.cpu_seen[0]:
            cores = max(0, int((used - run.cpu_seen[1]) / (now - run.cpu_seen[0])))
        run.cpu_seen = (now, used)
        return ContainerUsage(memory, cores)


class _CannotRun(Exception):
    pass


async def _answers(port: int, path: str | None) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(NODE_IP, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        if path is None:
            return True
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {NODE_IP}\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 1.0)
        parts = line.split()
        return len(parts) > 1 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _cpu_nanoseconds(pid: int) -> int:
    """CPU time of all threads of a process (schedstat: nanoseconds on a CPU)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total


async def _remove_cgroup(cgroup: MemoryCgroup) -> None:
    """Kill what is left in it (a container's children) and remove it."""
    for _ in range(100):
        try:
            pids = cgroup.processes()
        except CgroupError:
            return  # already gone
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            cgroup.remove()
            return
        except CgroupError:
            await asyncio.sleep(0.02)  # the kernel empties it once its processes are reaped


class PodWorker:
    """One pod on this node: its containers and the status the kubelet writes for it."""

    def __init__(self, kubelet: Kubelet, pod: JSON) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.log_dir = kubelet.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.containers = [ContainerRunner(self, c) for c in pod["spec"]["containers"]]
        self.start_time = now_rfc3339()
        self.conditions: dict[str, JSON] = {}
        self.task: asyncio.Task[None] | None = None
        self.gone = False  # deleted from the store: nothing more to publish
        self.deleting = False

    def runner(self, container: str) -> ContainerRunner:
        for runner in self.containers:
            if runner.name == container:
                return runner
        raise KeyError(container)

    async def main(self) -> None:
        self.publish()
        async with asyncio.TaskGroup() as group:
            for runner in self.containers:
                group.create_task(runner.loop())

    def _condition(self, type_: str, ok: bool, reason: str = "", message: str = "") -> JSON:
        status = "True" if ok else "False"
        previous = self.conditions.get(type_)
        condition: JSON = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": previous["lastTransitionTime"]
            if previous is not None and previous["status"] == status
            else now_rfc3339(),
        }
        if not ok and reason:
            condition["reason"], condition["message"] = reason, message
        self.conditions[type_] = condition
        return condition

    def status(self, qos_class: str | None) -> JSON:
        runners = self.containers
        if all(r.finished for r in runners):
            failed = any(r.exit_codes and r.exit_codes[-1] != 0 for r in runners)
            phase = "Failed" if failed else "Succeeded"
        elif all(r.ever_started for r in runners):
            phase = "Running"
        else:
            phase = "Pending"
        unready = [r.name for r in runners if not r.ready]
        all_ready = not unready
        message = f"containers with unready status: [{' '.join(unready)}]"
        terminal = phase in ("Succeeded", "Failed")
        conditions = [
            self._condition("PodReadyToStartContainers", not terminal),
            self._condition("Initialized", True),
            self._condition(
                "Ready", all_ready, "PodCompleted" if terminal else "ContainersNotReady", message
            ),
            self._condition(
                "ContainersReady",
                all_ready,
                "PodCompleted" if terminal else "ContainersNotReady",
                message,
            ),
            self._condition("PodScheduled", True),
        ]
        status: JSON = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": NODE_IP,
            "podIPs": [{"ip": NODE_IP}],
            "startTime": self.start_time,
            "containerStatuses": [r.status() for r in runners],
        }
        if qos_class:
            status["qosClass"] = qos_class
        return status

    def publish(self) -> None:
        """Write the whole status (level-based: computed from what the runners know)."""
        if self.gone:
            return

        def write(pod: JSON) -> None:
            pod["status"] = self.status((pod.get("status") or {}).get("qosClass"))

        try:
            self.kubelet.front.store.update(PODS, self.namespace, self.name, write, "status")
        except ApiError:
            self.gone = True  # deleted meanwhile

    async def terminate(self, grace: float) -> None:
        await asyncio.gather(*(r.stop(grace) for r in self.containers))
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    def kill(self) -> None:
        for runner in self.containers:
            runner.kill_now()


class Kubelet:
    """`with Kubelet(front) as kubelet:` (or `async with`) runs the front's pods as processes.

    It lives in the front's event loop; `pid()`, `cgroup()` and `read_log()` may be called
    from any thread.
    """

    def __init__(
        self,
        front: ClusterFront,
        *,
        node_name: str = "kubelet-test-node",
        metrics_interval: float = 2.0,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
        workdir: Path | None = None,
    ) -> None:
        self.front = front
        self.node_name = node_name
        self.metrics_interval = metrics_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="oomf-kubelet-"))
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._tasks: list[asyncio.Task[None]] = []
        self._deletions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.front.run(self._start())

    async def stop(self) -> None:
        await self.front.run(self._stop())

    def __enter__(self) -> Self:
        self.front.submit(self._start()).result(60)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.front.submit(self._stop()).result(120)

    async def _start(self) -> None:
        """In the front's event loop, like everything the kubelet does."""
        store = self.front.store
        store.mutators.append(_admit)
        store.graceful_pods = True
        self.front.log_source = self.read_log
        watch = store.watch(PODS)
        self._tasks = [
            asyncio.create_task(self._sync(watch), name="kubelet-sync"),
            asyncio.create_task(self._publish_metrics(), name="kubelet-metrics"),
        ]

    async def _stop(self) -> None:
        for task in [*self._tasks, *self._deletions]:
            task.cancel()
        for task in [*self._tasks, *self._deletions]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        workers = list(self.workers.values())
        for worker in workers:
            worker.gone = True
            worker.kill()
        for worker in workers:
            await worker.terminate(0)
        self.workers.clear()
        store = self.front.store
        with contextlib.suppress(ValueError):
            store.mutators.remove(_admit)
        store.graceful_pods = False
        if self.front.log_source == self.read_log:
            self.front.log_source = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- for tests --

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        for worker in self.workers.values():
            if (worker.namespace, worker.name) == (namespace, name):
                return worker
        return None

    def pid(self, namespace: str, name: str, container: str) -> int | None:
        """The live process of a container, if it runs now."""
        worker = self.worker(namespace, name)
        if worker is None:
            return None
        run = worker.runner(container).run
        if run is None or run.process.returncode is not None:
            return None
        return run.process.pid

    def cgroup(self, namespace: str, name: str, container: str) -> MemoryCgroup | None:
        worker = self.worker(namespace, name)
        run = worker.runner(container).run if worker is not None else None
        return run.cgroup if run is not None else None

    def read_log(self, namespace: str, name: str, container: str, previous: bool) -> bytes | None:
        worker = self.worker(namespace, name)
        if worker is None:
            return None
        try:
            runner = worker.runner(container)
        except KeyError:
            return None
        path = runner.previous_log if previous else (runner.run.log if runner.run else None)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    # -- the sync loop --

    async def _sync(self, watch: Watch) -> None:
        async for event in watch:
            pod = event.object
            uid = pod["metadata"]["uid"]
            if event.type == "DELETED":
                worker = self.workers.pop(uid, None)
                if worker is not None:
                    worker.gone = True
                    worker.kill()
                    self.front.metrics.forget(worker.namespace, worker.name)
                continue
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in (None, "", self.node_name):
                continue
            worker = self.workers.get(uid)
            if worker is None:
                phase = (pod.get("status") or {}).get("phase")
                if pod["metadata"].get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
                    continue
                bound = self._bind(pod)
                if bound is None:
                    continue
                worker = PodWorker(self, bound)
                self.workers[uid] = worker
                worker.task = asyncio.create_task(worker.main(), name=f"pod-{worker.name}")
            elif pod["metadata"].get("deletionTimestamp") and not worker.deleting:
                worker.deleting = True
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
                task = asyncio.create_task(self._finish_deletion(worker, grace))
                self._deletions.add(task)
                task.add_done_callback(self._deletions.discard)

    def _bind(self, pod: JSON) -> JSON | None:
        """Stand in for the scheduler (spec.nodeName) and finish admission for older pods."""
        meta = pod["metadata"]

        def bind(obj: JSON) -> None:
            obj["spec"]["nodeName"] = self.node_name
            assign_ports(PODS, obj)

        try:
            return self.front.store.update(
                PODS, meta["namespace"], meta["name"], bind, bump_generation=False
            )
        except ApiError:
            return None

    async def _finish_deletion(self, worker: PodWorker, grace: float) -> None:
        await worker.terminate(grace)
        self.front.metrics.forget(worker.namespace, worker.name)
        worker.gone = True
        self.workers.pop(worker.uid, None)
        with contextlib.suppress(ApiError):
            self.front.store.delete(PODS, worker.namespace, worker.name, grace_period=0)

    async def _publish_metrics(self) -> None:
        while True:
            for worker in list(self.workers.values()):
                usage = {
                    runner.name: u
                    for runner in worker.containers
                    if (u := runner.usage()) is not None
                }
                if usage:
                    self.front.metrics.publish(
                        worker.namespace, worker.name, usage, self.metrics_interval
                    )
                else:
                    self.front.metrics.forget(worker.namespace, worker.name)
            await asyncio.sleep(self.metrics_interval)  # the sampling period


@pytest.fixture(name="kubelet")
def kubelet_fixture(front: ClusterFront) -> Iterator[Kubelet]:
    """A kubelet on the `front` fixture's cluster, sampling metrics every 0.5 s."""
    reason = cgroups_available()
    if reason is not None:
        pytest.skip(f"the test kubelet needs memory cgroups: {reason}")
    with Kubelet(front, metrics_interval=0.5, backoff_initial=1.0, backoff_max=10.0) as k:
        yield k
