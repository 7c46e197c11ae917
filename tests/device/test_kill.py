"""Kill the device between any two steps: after a restart nothing is lost or doubled.

The scenario runs once to count the device's steps (store transactions and requests),
then once per step and mode with the device killed at that step, reopened from disk,
and the interrupted action carried on (an edit the user saw saved is not made again;
an edit that was lost is). Every run must end in the state of the run with no kill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mobile_schema.client import DeviceClient
from tests.device.conftest import GRID_A, GRID_B
from tests.device.faults import Faults, Killed, open_faulty
from tests.device.harness import canonical, journal, open_device, view
from tests.device.replica_server import ReplicaServer

R1 = "11111111-1111-4111-8111-111111111111"
R2 = "22222222-2222-4222-8222-222222222222"
OPTIONS = {"push_batch": 2, "page_limit": 2}

Edit = Callable[[DeviceClient], Any]
Script = list[tuple[str, Edit | None]]


def create_r1(client: DeviceClient) -> None:
    client.create("household", GRID_A, {"head_name": "王", "notes": "n1"}, record_id=R1)


def create_r2(client: DeviceClient) -> None:
    categories = ["fire", "gas"]
    client.create(
        "hazard_check", GRID_B, {"severity": "low", "categories": categories}, record_id=R2
    )


# "backup" is taken before the phone registers unless the script takes it later.
SCRIPTS: dict[str, Script] = {
    # 401 token_revoked, then a server restored to after the phone registered (seq_gap).
    "revoked_then_restored": [
        ("edit", create_r1),
        ("edit", create_r2),
        ("sync", None),
        ("edit", lambda c: c.set(R2, "categories", ["gas", "flood"])),
        ("revoke", None),
        ("sync", None),
        ("backup", None),
        ("other", None),
        ("edit", lambda c: c.set(R1, "head_name", "王芳")),
        ("sync", None),
        ("edit", lambda c: c.set(R2, "severity", "high")),
        ("restore", None),
        ("sync", None),
    ],
    # A server restored to before the phone registered: 401 device_unknown, and every
    # op of the phone, acknowledged or not, goes out again under a new registration.
    "lost_by_the_server": [
        ("edit", create_r1),
        ("edit", create_r2),
        ("sync", None),
        ("edit", lambda c: c.set(R2, "categories", ["gas", "flood"])),
        ("restore", None),
        ("sync", None),
        ("other", None),
        ("edit", lambda c: c.set(R1, "head_name", "王芳")),
        ("sync", None),
    ],
}
# Registrations holding ops in the phone's journal at the end of each script.
REGISTRATIONS = {"revoked_then_restored": 2, "lost_by_the_server": 1}


def run(
    tmp_path, faults: Faults, script: Script
) -> tuple[ReplicaServer, DeviceClient, DeviceClient]:
    server = ReplicaServer(page_size=3)
    credentials = {u: (u, server.add_user(u, [GRID_A, GRID_B])) for u in ("worker1", "worker2")}
    other = open_device(tmp_path / "other.db", server, credentials["worker2"], **OPTIONS)
    other.register(*credentials["worker2"])
    other.sync()
    backup = server.backup()
    phone = open_faulty(tmp_path / "phone.db", server, faults, credentials["worker1"], **OPTIONS)
    phone.register(*credentials["worker1"])
    phone.sync()

    def restart(client: DeviceClient) -> DeviceClient:
        client.close()
        return open_faulty(tmp_path / "phone.db", server, faults, credentials["worker1"], **OPTIONS)

    faults.armed = True
    for action, edit in script:
        if action == "backup":
            backup = server.backup()
        elif action == "other":
            other.sync()
            other.set(R1, "notes", "from the other phone")
            other.sync()
        elif action == "revoke":
            server.revoke(phone.state().device_id)  # the next sync signs in again
        elif action == "restore":
            server.restore(backup)  # the server loses everything after the backup
        elif action == "edit":
            made = len(journal(phone))
            try:
                edit(phone)
            except Killed:
                phone = restart(phone)
                if len(journal(phone)) == made:  # the edit was lost: the user makes it again
                    edit(phone)
        else:
            while True:
                try:
                    phone.sync()
                    break
                except Killed:
                    phone = restart(phone)
    faults.armed = False
    for client in (phone, other, phone, other):
        client.sync()
    return server, phone, other


def server_values(server: ReplicaServer) -> dict[tuple[str, str], str]:
    return {slot: canonical(v.value) for slot, v in server.state.replica.state().items()}


def check_invariants(
    server: ReplicaServer, phone: DeviceClient, other: DeviceClient, registrations: int
) -> None:
    mine = journal(phone)
    seqs: dict[str, list[int]] = {}
    for device_id, seq, _ in mine:
        seqs.setdefault(device_id, []).append(seq)
    assert len(seqs) == registrations
    assert list(seqs)[-1] == phone.state().device_id
    log = server.state.replica.log()
    for device_id, numbers in seqs.items():
        assert numbers == list(range(1, len(numbers) + 1))
        stored = sorted(s.op.seq for s in log if s.op.device_id == device_id)
        assert stored == numbers  # every op on the server once, none missing
    current = seqs[phone.state().device_id]
    assert (phone.state().acked_seq, phone.unsent_count()) == (len(current), 0)
    values = server_values(server)
    for client in (phone, other):
        assert {slot: canonical(v) for slot, v in view(client).items()} == values
        assert client.state().cursor == server.state.replica.position


@pytest.fixture(scope="module", params=list(SCRIPTS))
def reference(request, tmp_path_factory):
    name = request.param
    faults = Faults()
    server, phone, other = run(tmp_path_factory.mktemp(name), faults, SCRIPTS[name])
    check_invariants(server, phone, other, REGISTRATIONS[name])
    result = (name, faults.steps, server_values(server), journal(phone))
    phone.close()
    other.close()
    return result


def test_the_scenario_has_steps_of_every_kind(reference):
    name, steps, values, ops = reference
    assert len(steps) > 30
    assert {"http:POST /api/v1/devices/register", "store:register"} <= set(steps)
    assert values[(R1, "head_name")] == canonical("王芳")
    assert values[(R2, "categories")] == canonical(["flood", "gas"])
    assert values[(R1, "notes")] == canonical("from the other phone")
    if name == "lost_by_the_server":
        assert "store:device_unknown" in steps
        assert len(ops) == 8
    else:
        assert len(ops) == 9


@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_kill_at_any_step_loses_and_doubles_nothing(tmp_path, reference, mode):
    name, steps, values, ops = reference
    contents = sorted(content for _, _, content in ops)
    for at in range(1, len(steps) + 1):
        faults = Faults(at=at, mode=mode)
        server, phone, other = run(tmp_path / f"{mode}-{at}", faults, SCRIPTS[name])
        try:
            check_invariants(server, phone, other, REGISTRATIONS[name])
            assert server_values(server) == values, faults.steps[-1]
            assert sorted(content for _, _, content in journal(phone)) == contents
        finally:
            phone.close()
            other.close()
