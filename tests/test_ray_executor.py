"""The loop on a Ray cluster: a local cluster of two nodes on this machine (Ray's own test utility), candidates
shipped to the nodes and back, a worker killed mid-candidate, a head killed mid-loop and resumed."""

import io
import json
import os
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robosmith.agent.loop import LoopSettings
from robosmith.cli import app
from robosmith.errors import ConfigError
from robosmith.task import load_task

from .test_agent import kill_when

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    if ray.is_initialized():
        ray.shutdown()
    nodes.shutdown()


def trainers() -> dict[int, Path]:
    """Candidate trainers running on this machine: pid -> the folder they train in."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"robosmith.execution.worker" in argv:
            found[int(proc.name)] = Path(argv[argv.index(b"robosmith.execution.worker") + 1].decode())
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_a_ray_worker_mid_candidate(killed: list, stop: threading.Event) -> None:
    """SIGKILL the Ray worker process that runs a candidate, once its trainer has written a metrics row."""
    while not stop.is_set() and not killed:
        for pid, folder in trainers().items():
            metrics = folder / "metrics.jsonl"
            if metrics.is_file() and metrics.read_text().strip():
                worker = parent_of(pid)
                os.kill(worker, signal.SIGKILL)
                killed.append((worker, folder))
                return
        time.sleep(0.1)


@pytest.mark.slow
def test_loop_on_two_nodes_survives_a_killed_worker_and_a_killed_head(cluster, tmp_path):
    """Three candidates on two one-CPU nodes: a Ray worker is killed mid-candidate (the candidate runs again),
    then the head is killed a second after the first candidate came back (the third has not finished), then
    `robosmith resume` finishes the loop without training again what had come back."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "robosmith.cli", "run", "so101_reach", "--offline", "--out", str(run),
           "--candidates", "3", "--iterations", "1", "--train-minutes", "0.15", "--num-envs", "16",
           "--eval-episodes", "4", "--no-baseline", "--no-dr", "--executor", "ray", "--ray-address", cluster.address]
    results = [run / "iter_00" / f"cand_{k}" / "result.json" for k in range(3)]
    killed: list = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_ray_worker_mid_candidate, args=(killed, stop), daemon=True)
    killer.start()
    try:
        assert kill_when(cmd, results[0], 300, any_of=results), "no candidate came back"
    finally:
        stop.set()
        killer.join()
    assert killed, "no candidate was ever seen training"
    assert not killed[0][1].is_relative_to(tmp_path)  # it trained in the node's own folder (shipped, not shared)
    finished = {r: r.read_bytes() for r in results if r.is_file()}
    assert finished and len(finished) < 3
    status = json.loads(CliRunner().invoke(app, ["status", str(run), "--json"]).output)
    assert status["state"] == "stopped" and status["executor"] == "ray"
    assert "interrupted" in [c["status"] for c in status["candidates"]]
    result = CliRunner().invoke(app, ["resume", str(run), "--ray-address", cluster.address])
    ray.shutdown()
    assert result.exit_code == 0, result.output
    status = json.loads(CliRunner().invoke(app, ["status", str(run), "--json"]).output)
    assert status["state"] == "finished" and [c["status"] for c in status["candidates"]] == ["ok"] * 3
    for r, content in finished.items():  # came back before the kill: not trained again
        assert r.read_bytes() == content
    for r in results:  # the killed worker's candidate ran again from its archive and finished
        record = json.loads(r.read_text())
        assert record["status"] == "ok", record
        assert record["node"]["resource_limits"] and "landlock_abi" in record["node"]
        assert (r.parent / "metrics.jsonl").read_text().strip() and (r.parent / "record.json").is_file()
        # While it trained on the node, its progress came back to the head.
        assert json.loads((r.parent / "live.json").read_text())["node"] == record["node"]["host"]
    assert json.loads((run / "summary.json").read_text())["candidates_tried"] == 3
    assert not trainers(), "a trainer outlived its Ray worker or its head"


def test_executor_names_are_checked():
    with pytest.raises(ConfigError, match="executor 'slurm': one of local, ray"):
        LoopSettings(executor="slurm")


def test_the_node_checks_the_reward_again_and_returns_only_what_it_made(tmp_path):
    """What the node trains is what passed the check on the node: a reward changed after the head's check (here,
    one that imports os) is refused there, and the refusal comes back as the candidate's result."""
    import dataclasses

    from robosmith.execution.confine import TrainerLimits
    from robosmith.execution.ray_executor import pack, train_on_node, unpack
    from robosmith.runs import CandidateFolder, write_json
    from robosmith.train.ppo import TrainSettings

    task = load_task("so101_reach")
    folder = CandidateFolder(tmp_path / "cand_0")
    folder.path.mkdir()
    folder.reward_body.write_text("import os\n" + task.reference_reward_body())
    settings = TrainSettings.from_task(task, num_envs=8, eval_episodes=2)
    write_json(folder.job, {"task": task.to_dict(), "settings": dataclasses.asdict(settings),
                            "reward_file": "reward_body.py", "backend": "cpu"})
    job = folder.job.read_bytes()
    (folder.path / "wandb").mkdir()  # wandb's offline runs link to absolute paths: links never travel
    (folder.path / "wandb" / "debug.log").symlink_to("/etc/hostname")
    with tarfile.open(fileobj=io.BytesIO(pack(folder.path))) as archive:
        names = archive.getnames()
    assert "job.json" in names and "wandb" in names and "wandb/debug.log" not in names
    returned = train_on_node(str(folder.path), pack(folder.path), 60, TrainerLimits(cpu_s=60, memory_mb=4096), 1)
    unpack(returned, folder.path)
    result = json.loads(folder.result.read_text())
    assert result["status"] == "violation" and "check on node" in result["reason"] and "line 1" in result["reason"]
    assert result["node"]["host"]
    assert folder.job.read_bytes() == job  # the node's copy of job.json does not come back


def test_with_a_shared_filesystem_the_node_works_in_the_run_folder(tmp_path):
    """--shared-fs: nothing is shipped; the node writes result.json (with its layers) into the folder itself, and a
    folder the node cannot see is an error naming it."""
    import dataclasses

    from robosmith.execution.confine import TrainerLimits
    from robosmith.execution.ray_executor import train_on_node
    from robosmith.runs import CandidateFolder, write_json
    from robosmith.train.ppo import TrainSettings

    task = load_task("so101_reach")
    folder = CandidateFolder(tmp_path / "cand_0")
    folder.path.mkdir()
    folder.reward_body.write_text("import os\n" + task.reference_reward_body())
    write_json(folder.job, {"task": task.to_dict(), "settings": dataclasses.asdict(TrainSettings.from_task(task)),
                            "reward_file": "reward_body.py", "backend": "cpu"})
    limits = TrainerLimits(cpu_s=60, memory_mb=4096)
    assert train_on_node(str(folder.path), None, 60, limits, 1) is None
    result = json.loads(folder.result.read_text())
    assert result["status"] == "violation" and result["node"]["resource_limits"]
    with pytest.raises(FileNotFoundError, match="no shared filesystem"):
        train_on_node(str(tmp_path / "elsewhere"), None, 60, limits, 1)
