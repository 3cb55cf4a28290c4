"""Driving a running Solme licensing simulation from Python, through its control API.

The simulation (`solme-sim --data-dir DIR`) starts Solme's main server, the
licensing@ mail gateway and two customer license servers on loopback, all on one
simulated clock, and stays up. When it is ready it writes DIR/control.json: the
control API's URL and the file holding its bearer token. Everything below uses only
that file and HTTP/JSON (the standard library's urllib); pytest runs it.

    SOLME_SIM=target/debug/solme-sim pytest docs/control-api-example
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CONTACT = "ops@acme.example"


class Simulation:
    """A client of one simulation's control API, found through DIR/control.json."""

    def __init__(self, data_dir: Path):
        control = json.loads((data_dir / "control.json").read_text())
        self.url = control["url"]
        self.token = Path(control["token_file"]).read_text().strip()

    def call(self, method, path, body=None):
        """Returns (HTTP status, JSON body); errors are {"code", "message"}."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refusal:
            return refusal.code, json.load(refusal)

    def ok(self, method, path, body=None):
        status, answer = self.call(method, path, body)
        assert status == 200, f"{method} {path}: {status} {answer}"
        return answer

    def program(self, name):
        programs = self.ok("GET", "/v1/status")["programs"]
        return next(p for p in programs if p["name"] == name)


def wait_for(what, probe, timeout=30.0):
    """Polls `probe` until it returns something truthy, or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def checkout(api, feature="solme-cad"):
    """A licensed program asks the local server for a seat: (status, JSON body)."""
    request = urllib.request.Request(
        f"{api}/api/v1/leases",
        data=json.dumps({"feature": feature, "client": "pytest"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refusal:
        return refusal.code, json.load(refusal)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Starts `solme-sim --data-dir DIR`, waits for control.json, stops it at the end."""
    binary = os.environ.get("SOLME_SIM", "target/debug/solme-sim")
    data_dir = tmp_path_factory.mktemp("sim") / "data"
    output = open(data_dir.parent / "solme-sim.output", "w")
    process = subprocess.Popen(
        [binary, "--data-dir", str(data_dir)],
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(
            "the simulation's control.json",
            lambda: process.poll() is not None or (data_dir / "control.json").exists(),
            timeout=240,
        )
        assert process.poll() is None, (data_dir.parent / "solme-sim.output").read_text()
        yield Simulation(data_dir)
    finally:
        # Ctrl-C: the simulation stops every program it started.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        output.close()


def test_day_367_without_a_sync_is_sync_expired(sim):
    api = sim.program("local-server-1")["addresses"]["api"]
    status, lease = checkout(api)
    assert status == 201, lease

    moved = sim.ok("POST", "/v1/clock", {"advance": "367d"})
    assert moved["offset"] == "+367d"

    # Every program follows the clock file within a second: the client API refuses.
    status, refusal = wait_for(
        "SYNC_EXPIRED from the client API",
        lambda: (lambda s, b: (s, b) if b.get("code") == "SYNC_EXPIRED" else None)(
            *checkout(api)
        ),
        timeout=10,
    )
    assert 400 <= status < 500, refusal

    # So does the manager's status, run as a verb of that server on the same clock.
    output = sim.ok(
        "POST", "/v1/exec", {"program": "local-server-1", "args": ["status", "--json"]}
    )
    assert output["exit_code"] == 0, output
    assert json.loads(output["stdout"])["state"] == "expired"

    # The move is in the event log.
    events = sim.ok("GET", "/v1/events?since=0")
    assert any(e["kind"] == "clock-moved" and e["by"] == "advance 367d" for e in events)


def test_bad_input_is_refused_with_a_code_and_changes_nothing(sim):
    before = sim.ok("GET", "/v1/status")["clock"]["offset_ms"]
    status, answer = sim.call("POST", "/v1/clock", {"advance": "soon"})
    assert status == 400
    assert answer["code"] == "MALFORMED"
    assert sim.ok("GET", "/v1/status")["clock"]["offset_ms"] == before
