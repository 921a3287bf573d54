"""The Ray executor: each candidate is a Ray task on whichever node of a cluster has the resources it asks for.

On the node, the task does what the local executor does on this machine, with the same code: the reward is
checked again (the static check and the smoke run, on that node's simulator), then the candidate trains as a
confined process with the same limits (`robosmith.execution.local.train_candidates` with one slot). Which
confinement layers held there is recorded in the candidate's result.json under `node`.

Folders travel as archives by default: the task gets the candidate folder (and, for the randomization prior,
the policy it measures), trains in a temporary folder on the node and returns the folder's new files, which
are unpacked into the run on the head, result.json last. With `shared_fs` the nodes see the run folder at the
same path and train in place.

A worker or node that dies mid-candidate: Ray runs the task again, up to `retries` times, from the archive (a
fresh folder); after that the candidate is recorded as crashed with Ray's reason and the others go on. Only
folders without a result.json are submitted, so a resumed loop retrains nothing finished, wherever it ran.

Ray is imported only here: the local executor, the default, needs nothing of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from robosmith.execution.confine import TrainerLimits, landlock_abi
from robosmith.execution.executor import OnDone, every
from robosmith.runs import CandidateFolder, last_metrics_row, write_json

SHIPPED_POLICY = "_policy"  # where the prior's policy folder lands inside the shipped archive
NOT_RETURNED = {CandidateFolder.job, SHIPPED_POLICY}  # the head has these already
REPORT_EVERY_S = 2.0  # how often a node sends a training candidate's last metrics row to the head


@dataclass
class RayExecutor:
    """Candidates as Ray tasks; `address` as `ray.init` takes it ("auto", "ray://host:port"), None starts a local
    Ray on this machine."""

    timeout_s: float
    limits: TrainerLimits
    threads_per_candidate: int = 1
    gpus_per_candidate: float = 0.0
    address: str | None = None
    shared_fs: bool = False
    retries: int = 1
    name: str = "ray"

    def run(self, folders: list[Path], on_done: OnDone | None = None) -> None:
        import ray
        from ray.util.queue import Queue

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        remote = ray.remote(train_on_node).options(
            num_cpus=self.threads_per_candidate, num_gpus=self.gpus_per_candidate, max_retries=self.retries,
            retry_exceptions=False,
        )
        progress = Queue(actor_options={"num_cpus": 0})  # the trainers' last metrics rows, while they train
        refs = {}
        for folder in (f.resolve() for f in folders if not CandidateFolder(f).result.is_file()):
            shipped = None if self.shared_fs else pack(folder)
            refs[remote.remote(str(folder), shipped, self.timeout_s, self.limits, self.threads_per_candidate,
                               progress)] = folder
        try:
            self._wait(refs, progress, on_done)
        finally:
            ray.kill(progress.actor)

    def _wait(self, refs: dict, progress, on_done: OnDone | None) -> None:
        import ray

        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=REPORT_EVERY_S)
            for item in progress.get_nowait_batch(progress.qsize()) if progress.qsize() else []:
                folder = CandidateFolder(Path(item["folder"]))
                if not folder.result.is_file():
                    write_json(folder.live, {**item["row"], "node": item["node"]})
            if not ready:
                continue
            ref = ready[0]
            folder = refs.pop(ref)
            try:
                returned = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker or its node died more often than `retries`
                reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
                write_json(CandidateFolder(folder).result, {
                    "status": "crashed", "reason": f"the Ray task failed {self.retries + 1} times: {reason}",
                })
            else:
                if returned is not None:
                    try:
                        unpack(returned, folder)
                    except (tarfile.TarError, OSError) as e:
                        write_json(CandidateFolder(folder).result, {
                            "status": "crashed", "reason": f"its folder did not come back from the node: {e}"})
            if on_done:
                on_done(folder, json.loads(CandidateFolder(folder).result.read_text()))


def train_on_node(folder: str, shipped: bytes | None, timeout_s: float, limits: TrainerLimits,
                  threads: int, progress=None) -> bytes | None:
    """The Ray task: check and train one candidate on this node; the folder's new files as an archive (None
    when the run folder is shared and was written in place). `folder` is the candidate's path on the head, which
    names its folder on the node too."""
    from robosmith.execution.local import train_candidates

    if shipped is None:
        workdir = Path(folder)
        if not CandidateFolder(workdir).job.is_file():
            raise FileNotFoundError(f"{folder}/job.json: not on node {socket.gethostname()} (no shared filesystem? "
                                    "run without --shared-fs)")
    else:
        # One folder per candidate and node: an attempt whose worker was killed leaves it behind; the retry on
        # this node starts by clearing it.
        workdir = Path(tempfile.gettempdir()) / "robosmith-candidates" / hashlib.sha1(folder.encode()).hexdigest()[:16]
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(shipped)) as archive:
            archive.extractall(workdir, filter="data")
    try:
        candidate = CandidateFolder(workdir)
        job = json.loads(candidate.job.read_text())
        if (workdir / SHIPPED_POLICY).is_dir():
            write_json(candidate.job, {**job, "policy": str(workdir / SHIPPED_POLICY)})
        rejected = recheck_reward(workdir, job)
        if rejected:
            write_json(candidate.result, {"status": "violation", "reason": rejected})
        else:
            candidate.result.unlink(missing_ok=True)
            with reporting(candidate, folder, progress):
                train_candidates([workdir], 1, timeout_s, limits, threads)
        result = json.loads(candidate.result.read_text())
        write_json(candidate.result, {**result, "node": node_layers()})
        return None if shipped is None else pack(workdir, returned=True)
    finally:
        if shipped is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def reporting(candidate: CandidateFolder, folder: str, progress) -> contextlib.AbstractContextManager:
    """While the block runs, send the trainer's newest metrics row to the head every few seconds."""
    if progress is None:
        return contextlib.nullcontext()
    host, sent = socket.gethostname(), [None]

    def send() -> None:
        row = last_metrics_row(candidate.metrics)
        if row is not None and row != sent[0]:
            progress.put_nowait({"folder": folder, "row": row, "node": host})
            sent[0] = row

    return every(REPORT_EVERY_S, send)


def recheck_reward(workdir: Path, job: dict) -> str:
    """The reward's static check and smoke run again, on this node: what trains here is what passed here.
    An empty string when it passes; the reason otherwise."""
    from robosmith.execution.smoke import batch_sizes, validate_reward
    from robosmith.reward.check import RewardRejected
    from robosmith.task import task_from_dict

    if "reward_file" not in job or job.get("backend", "cpu") != "cpu":
        return ""  # the prior trains nothing; an engine's package is checked again by the worker itself
    task = task_from_dict(job["task"], CandidateFolder(workdir).job)
    settings = job["settings"]
    try:
        validate_reward(CandidateFolder(workdir).reward_body.read_text(), task, workdir,
                        sizes=batch_sizes(task, settings["num_envs"], settings["eval_episodes"]))
    except RewardRejected as e:
        return f"the {e.stage} check on node {socket.gethostname()} rejected the reward: {e.reason}"
    return ""


def node_layers() -> dict:
    """Which confinement layers this node allows: a network namespace needs root (or user namespaces), Landlock
    a kernel >= 5.13; resource limits and the memory watchdog hold everywhere."""
    probe = subprocess.run([sys.executable, "-c", "import os; os.unshare(os.CLONE_NEWNET)"],
                           capture_output=True, timeout=30)
    abi = landlock_abi()
    return {"host": socket.gethostname(), "network_namespace": probe.returncode == 0, "landlock_abi": abi,
            "writes_confined": abi > 0, "resource_limits": True}


def pack(folder: Path, returned: bool = False) -> bytes:
    """A candidate folder as a gzipped tar of its regular files and folders (links stay behind: wandb's offline
    runs link to absolute paths on the node). Going out, the prior's policy folder comes along (under `_policy`,
    without videos); coming back, only what the node made (not job.json, not the shipped policy)."""
    def plain(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return member if member.isfile() or member.isdir() else None

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.iterdir()):
            if returned and path.name in NOT_RETURNED:
                continue
            archive.add(path, arcname=path.name, filter=plain)
        if not returned:
            policy = json.loads(CandidateFolder(folder).job.read_text()).get("policy")
            if policy:
                archive.add(policy, arcname=SHIPPED_POLICY,
                            filter=lambda m: None if m.name.endswith(".mp4") else plain(m))
    return buffer.getvalue()


def unpack(archive_bytes: bytes, folder: Path) -> None:
    """A returned archive into the candidate folder on the head; result.json last, so that a head killed while
    unpacking leaves the candidate unfinished (and a resume trains it again) rather than half there."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as archive:
        members = archive.getmembers()
        result = [m for m in members if m.name == CandidateFolder.result]
        archive.extractall(folder, members=[m for m in members if m not in result], filter="data")
        archive.extractall(folder, members=result, filter="data")
