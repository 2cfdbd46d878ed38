"""Emulated AWS for local invokes: the faithful emulator (moto made faithful, behind the CloudWatch
CBOR shim) on 127.0.0.1:5000, seeded with the example sites' RDS topology, alarms, ledger table,
event bus and alert topic. Runs until Ctrl-C.

    .venv/bin/python tests/local_aws.py [port]
"""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from harness import MotoServer
from world import World


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    moto = MotoServer(Path(tempfile.mkdtemp(prefix="rds-failover-local-"))).start(port)
    try:
        world = World(moto.endpoint).seed()
        world.seed_topic()
        print(f"emulated AWS on {moto.endpoint} (seeded; logs in {moto.workdir}); Ctrl-C to stop", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
