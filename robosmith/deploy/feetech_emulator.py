"""Six emulated Feetech STS3215 servos on a pseudo-terminal, moved by our simulated SO-101.

LeRobot's real SO-101 follower (`lerobot.robots.so_follower`, its `FeetechMotorsBus` and Feetech's
`scservo_sdk`) opens the terminal's path as if it were the arm's USB serial adapter. The emulator answers the
packets of Feetech's protocol 0 the way the servos do: PING, READ, WRITE, SYNC READ, SYNC WRITE on a
register table laid out as in the STS3215's memory map (EEPROM: model, ID, limits, homing offset, gains;
SRAM: torque enable, goal, present position/velocity/load, voltage, temperature). Goal positions drive a
one-environment MuJoCo arm; present values are read back from it, so calibration, sign-magnitude encodings,
units and torque handling go through the code a real arm uses.

Each servo has a mounting offset: the encoder tick at the model's joint zero (a real arm's horns are never
at 2048). `calibration()` gives the LeRobot calibration file a user would get by calibrating this arm; the
EEPROM starts with it written, as an arm calibrated before.

The emulator runs in its own process (the bus has 50 ms timeouts; the test process's Python must not delay
the answers). `EmulatedArm.bus_log()` returns every command that reached the bus, for the tests to judge
what a safety layer let through.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import select
import time
import tty
from dataclasses import dataclass

import numpy as np

from robosmith.robot.so101 import JOINT_NAMES
from robosmith.robot.units import GRIPPER_RANGE, TICKS_PER_TURN

# STS3215 memory map (Feetech's documentation): (address, bytes), and the sign bit of signed registers.
FIRMWARE_MAJOR, FIRMWARE_MINOR, MODEL_NUMBER, ID = (0, 1), (1, 1), (3, 2), (5, 1)
MIN_POSITION, MAX_POSITION, MAX_TORQUE = (9, 2), (11, 2), (16, 2)
HOMING_OFFSET, TORQUE_ENABLE, GOAL_POSITION, LOCK = (31, 2), (40, 1), (42, 2), (55, 1)
PRESENT_POSITION, PRESENT_VELOCITY, PRESENT_LOAD = (56, 2), (58, 2), (60, 2)
PRESENT_VOLTAGE, PRESENT_TEMPERATURE, MOVING = (62, 1), (63, 1), (66, 1)
SIGN_BITS = {HOMING_OFFSET: 11, GOAL_POSITION: 15, PRESENT_POSITION: 15, PRESENT_VELOCITY: 15, PRESENT_LOAD: 10}
STS3215_MODEL = 777
INST_PING, INST_READ, INST_WRITE, INST_SYNC_READ, INST_SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST = 0xFE
TICKS_PER_RAD = TICKS_PER_TURN / (2 * math.pi)


@dataclass(frozen=True)
class ServoSetup:
    """One arm's servos: the tick at each joint's zero, and the calibrated range in ticks around it."""

    mount_ticks: tuple[int, ...] = (2100, 1950, 2230, 1890, 2010, 2060)
    ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6)

    def calibration(self) -> dict[str, dict]:
        """The calibration file LeRobot writes for this arm (`<id>.json`): offsets put mid-range at 2047; the arm
        joints' ranges span the model's joint ranges, the gripper's is its closed-open range."""
        from robosmith.robot.so101 import joint_limits

        low, high = joint_limits()
        out = {}
        for i, name in enumerate(JOINT_NAMES):
            offset = self.mount_ticks[i] - 2047
            if i < 5:
                half = max(abs(low[i]), abs(high[i])) * TICKS_PER_RAD
                lo, hi = 2047 - round(half), 2047 + round(half)
            else:
                lo = 2047 + round(GRIPPER_RANGE[0] * TICKS_PER_RAD)
                hi = 2047 + round(GRIPPER_RANGE[1] * TICKS_PER_RAD)
            out[name] = {"id": self.ids[i], "drive_mode": 0, "homing_offset": offset, "range_min": lo,
                         "range_max": hi}
        return out


def _encode(value: int, sign_bit: int | None) -> int:
    if sign_bit is None or value >= 0:
        return value
    return (-value) | (1 << sign_bit)


def _decode(raw: int, sign_bit: int | None) -> int:
    if sign_bit is None or not raw & (1 << sign_bit):
        return raw
    return -(raw & ((1 << sign_bit) - 1))


def _status(servo_id: int, params: bytes = b"", error: int = 0) -> bytes:
    length = len(params) + 2
    body = bytes([servo_id, length, error]) + params
    return b"\xff\xff" + body + bytes([(~sum(body)) & 0xFF])


class _Servos:
    """The register tables and the simulated arm behind them (lives in the emulator's process).

    Packets are answered from the registers as they are, and the arm is advanced between packets: a servo
    answers within microseconds, and so must we, whatever the physics costs."""

    def __init__(self, setup: ServoSetup, task: str, seed: int, temperature: float) -> None:
        from robosmith.sim.batched_env import BatchedEnv, env_config
        from robosmith.task.load import load_task

        self.setup = setup
        t = load_task(task)
        self.env = BatchedEnv(t.scene, env_config(t, 1, seed), t.reset, t.has_goal)
        self.period = 1.0 / t.control_hz
        self.force_limit = np.abs(self.env.model.actuator_forcerange[:, 1]) + 1e-9
        self.kp = self.env.model.actuator_gainprm[:, 0].copy()
        self.targets = self.env.state().joint_pos[0].double().numpy()
        self.regs = {sid: bytearray(256) for sid in setup.ids}
        calibration = setup.calibration()
        for i, sid in enumerate(setup.ids):
            self._put(sid, FIRMWARE_MAJOR, 3)
            self._put(sid, FIRMWARE_MINOR, 10)
            self._put(sid, MODEL_NUMBER, STS3215_MODEL)
            self._put(sid, ID, sid)
            self._put(sid, MAX_TORQUE, 1000)
            cal = calibration[JOINT_NAMES[i]]
            self._put(sid, HOMING_OFFSET, cal["homing_offset"])
            self._put(sid, MIN_POSITION, cal["range_min"])
            self._put(sid, MAX_POSITION, cal["range_max"])
            self._put(sid, PRESENT_VOLTAGE, 120)
            self._put(sid, PRESENT_TEMPERATURE, int(temperature))
        self.last_advance = time.monotonic()
        self.log: list[dict] = []
        self._refresh()
        for sid in setup.ids:  # the goal registers start where the arm is
            self._put(sid, GOAL_POSITION, self._get(sid, PRESENT_POSITION))

    # registers
    def _put(self, sid: int, reg: tuple[int, int], value: int) -> None:
        raw = _encode(int(value), SIGN_BITS.get(reg))
        self.regs[sid][reg[0] : reg[0] + reg[1]] = raw.to_bytes(reg[1], "little")

    def _get(self, sid: int, reg: tuple[int, int]) -> int:
        return _decode(int.from_bytes(self.regs[sid][reg[0] : reg[0] + reg[1]], "little"), SIGN_BITS.get(reg))

    # physics
    def _joint_of_present(self, i: int, present: float) -> float:
        sid = self.setup.ids[i]
        actual = present + self._get(sid, HOMING_OFFSET)  # the servo reports actual - homing offset
        return (actual - self.setup.mount_ticks[i]) / TICKS_PER_RAD

    def advance(self) -> None:
        """Run the arm up to now, one control period at a time (at most 0.2 s behind)."""
        now = time.monotonic()
        periods = min(int((now - self.last_advance) / self.period), int(0.2 / self.period) + 1)
        if periods <= 0:
            return
        self.last_advance = now if periods > int(0.2 / self.period) else self.last_advance + periods * self.period
        q = self.env.state().joint_pos[0].double().numpy()
        targets = np.array([
            self._joint_of_present(i, self._get(sid, GOAL_POSITION)) if self._get(sid, TORQUE_ENABLE) else q[i]
            for i, sid in enumerate(self.setup.ids)
        ])
        self.targets = targets
        for _ in range(periods):
            self.env.step_targets(targets[None])
        self._refresh()

    def _refresh(self) -> None:
        s = self.env.state()
        q, qd = s.joint_pos[0].double().numpy(), s.joint_vel[0].double().numpy()
        force = self.kp * (self.targets - q)  # what a position servo's current (its load register) follows
        for i, sid in enumerate(self.setup.ids):
            actual = self.setup.mount_ticks[i] + q[i] * TICKS_PER_RAD
            self._put(sid, PRESENT_POSITION, int(round(actual - self._get(sid, HOMING_OFFSET))))
            self._put(sid, PRESENT_VELOCITY, int(round(qd[i] * TICKS_PER_RAD)))
            self._put(sid, PRESENT_LOAD, int(round(1000 * np.clip(force[i] / self.force_limit[i], -1, 1))))
            self._put(sid, MOVING, int(abs(qd[i]) > 0.05))

    # protocol
    def handle(self, servo_id: int, inst: int, params: bytes) -> bytes:
        ours = [sid for sid in self.setup.ids if servo_id in (sid, BROADCAST)]
        if not ours:
            return b""
        if inst == INST_PING:
            return b"".join(_status(sid) for sid in ours)
        if inst == INST_READ and servo_id != BROADCAST:
            addr, n = params[0], params[1]
            return _status(servo_id, bytes(self.regs[servo_id][addr : addr + n]))
        if inst == INST_WRITE:
            self._write(servo_id if servo_id != BROADCAST else None, params[0], params[1:])
            return b"" if servo_id == BROADCAST else _status(servo_id)
        if inst == INST_SYNC_READ:
            addr, n = params[0], params[1]
            return b"".join(_status(sid, bytes(self.regs[sid][addr : addr + n])) for sid in params[2:]
                            if sid in self.regs)
        if inst == INST_SYNC_WRITE:
            addr, n = params[0], params[1]
            for k in range(2, len(params), n + 1):
                sid = params[k]
                if sid in self.regs:
                    self._write(sid, addr, params[k + 1 : k + 1 + n])
            return b""
        return b"" if servo_id == BROADCAST else _status(servo_id, error=0x08)  # instruction error

    def _write(self, sid: int | None, addr: int, data: bytes) -> None:
        for target in [sid] if sid is not None else list(self.regs):
            self.regs[target][addr : addr + len(data)] = data
            if addr <= GOAL_POSITION[0] < addr + len(data) or addr <= TORQUE_ENABLE[0] < addr + len(data):
                self.log.append({
                    "t": time.monotonic(), "id": target, "torque": self._get(target, TORQUE_ENABLE),
                    "goal_ticks": self._get(target, GOAL_POSITION),
                    "goal_rad": self._joint_of_present(self.setup.ids.index(target), self._get(target, GOAL_POSITION)),
                })

    def place(self, joints: list[float]) -> None:
        """Put the arm at rest at these joint positions (rad), the goals where it is (the operator's hands)."""
        qpos, qvel = self.env.physical_state()
        qpos[0, :6], qvel[:] = joints, 0.0
        self.env.set_state(qpos, qvel)
        self.targets = np.asarray(joints, float)
        self._refresh()
        for sid in self.setup.ids:
            self._put(sid, GOAL_POSITION, self._get(sid, PRESENT_POSITION))
        self.last_advance = time.monotonic()

    def snapshot(self) -> dict:
        self.advance()
        return {sid: {"torque": self._get(sid, TORQUE_ENABLE), "goal": self._get(sid, GOAL_POSITION),
                      "present": self._get(sid, PRESENT_POSITION),
                      "temperature": self._get(sid, PRESENT_TEMPERATURE)} for sid in self.setup.ids}


def _split_packets(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Complete, checksummed instruction packets at the front of `buf` (consumed); noise is skipped."""
    out = []
    while True:
        start = buf.find(b"\xff\xff")
        if start < 0:
            del buf[: max(len(buf) - 1, 0)]
            return out
        del buf[:start]
        if len(buf) < 4:
            return out
        length = buf[3]
        if len(buf) < 4 + length:
            return out
        body = bytes(buf[2 : 3 + length])  # ID LEN INST PARAMS
        checksum = buf[3 + length]
        del buf[: 4 + length]
        if (~sum(body)) & 0xFF == checksum and length >= 2:
            out.append((body[0], body[2], body[3:]))


def _serve(conn, setup: ServoSetup, task: str, seed: int, temperature: float) -> None:
    # Real servos answer within microseconds and the bus gives up after 50 ms: on a busy machine the emulator
    # takes the scheduler's priority back from a niced parent where it is allowed to.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes pass untouched (no echo, no line editing); the slave stays open with us
    servos = _Servos(setup, task, seed, temperature)
    conn.send(("ready", os.ttyname(slave)))
    buf = bytearray()
    while True:
        ready, _, _ = select.select([master, conn], [], [], servos.period / 2)
        if master in ready:
            try:
                buf += os.read(master, 4096)
            except OSError:
                return
            for servo_id, inst, params in _split_packets(buf):
                reply = servos.handle(servo_id, inst, params)
                if reply:
                    os.write(master, reply)
        if conn in ready:
            cmd, arg = conn.recv()
            if cmd == "stop":
                conn.send(servos.snapshot())
                return
            if cmd == "snapshot":
                conn.send(servos.snapshot())
            elif cmd == "log":
                conn.send(servos.log)
            elif cmd == "place":
                servos.place(arg)
                conn.send(True)
            elif cmd == "temperature":
                for sid in servos.setup.ids:
                    servos._put(sid, PRESENT_TEMPERATURE, int(arg))
                conn.send(True)
        servos.advance()


class EmulatedArm:
    """Start with `with EmulatedArm(task) as arm:` and give LeRobot `arm.port` as the follower's port."""

    def __init__(self, task: str = "so101_reach", setup: ServoSetup | None = None, seed: int = 0,
                 temperature: float = 35.0) -> None:
        self.setup = setup or ServoSetup()
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, self.setup, task, seed, temperature), daemon=True)
        self._process.start()
        if not self._conn.poll(120):
            raise RuntimeError("the servo emulator did not start")
        _, self.port = self._conn.recv()

    def calibration(self) -> dict[str, dict]:
        return self.setup.calibration()

    def _ask(self, cmd: str, arg=None):
        self._conn.send((cmd, arg))
        return self._conn.recv()

    def snapshot(self) -> dict[int, dict]:
        """Per servo id: torque (0/1), goal and present position (raw ticks), temperature."""
        return self._ask("snapshot")

    def bus_log(self) -> list[dict]:
        """Every write of a goal position or torque enable that reached the servos, in order."""
        return self._ask("log")

    def place(self, joints) -> None:
        """Put the arm at rest at these joint positions (rad): what an operator does between tests."""
        self._ask("place", [float(v) for v in joints])

    def set_temperature(self, celsius: float) -> None:
        self._ask("temperature", celsius)

    def close(self) -> dict[int, dict]:
        final = self._ask("stop") if self._process.is_alive() else {}
        self._process.join(5)
        return final

    def __enter__(self) -> EmulatedArm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
