"""Runs N no-op tests one after another with upstream atex's FMFExecutor,
for a side-by-side comparison with atex's executor-overhead example.

usage: python upstream_executor.py local N
       python upstream_executor.py runc CONTAINER_ID N

Upstream's PodmanConnection runs `systemd-run --user ... crun exec`, which
this machine cannot do (no user systemd, crun fails); the runc variant is
the same single exec per command with the runtime that works here.
"""
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from atex.connection.local import LocalConnection
from atex.connection.podman import PodmanConnection
from atex.executor.fmf import FMFExecutor, discover


class RuncConnection(PodmanConnection):
    def cmd(self, command, *, func=subprocess.run, **func_args):
        return func(("runc", "exec", self._container_id, *command), **func_args)

    def rsync(self, *args, func=subprocess.run, **func_args):
        shell = f"/bin/bash -c 'exec runc exec {self._container_id} \"$@\"'"
        return func(("rsync", "-e", shell, *args), **{"check": True, "stdin": subprocess.DEVNULL} | func_args)


def main():
    kind = sys.argv[1]
    if kind == "local":
        conn, count = LocalConnection(), int(sys.argv[2])
    else:
        conn, count = RuncConnection(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as tree:
        root = Path(tree)
        (root / ".fmf").mkdir()
        (root / ".fmf" / "version").write_text("1\n")
        (root / "main.fmf").write_text("".join(f"/noop-{i}:\n    test: 'true'\n" for i in range(count)))
        tests = discover(str(root))
        conn.connect()
        with FMFExecutor(conn, tests) as executor:
            start = time.monotonic()
            for name in list(tests.data):
                with tempfile.TemporaryDirectory() as art:
                    executor.run_test(name, art)
            per_test = (time.monotonic() - start) / count
    print(f"upstream atex: {count} no-op tests, {per_test * 1000:.1f} ms per test")


main()
