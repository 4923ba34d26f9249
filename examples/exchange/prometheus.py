"""Start Debian's Prometheus for the exchange stack: writes its scrape config, then becomes it.

Prometheus reads no environment variables in its config, and the stack moves every port with one
(EXCHANGE_API_PORT=18080 ...), so the config is written at start from the arguments:

    prometheus.py --port 9090 --scrape trading-api=127.0.0.1:8080 --scrape chaoslab=127.0.0.1:9464

The data directory is the service's own directory in the stack's state directory
(CHAOSLAB_SERVICE_DIR, set by `chaoslab stack`). ``exec`` keeps the pid, so the supervisor's
signals reach Prometheus itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def config(scrapes: list[str], interval: str) -> str:
    jobs = []
    for item in scrapes:
        job, _, address = item.partition("=")
        if not address:
            sys.exit(f"prometheus.py: --scrape wants JOB=HOST:PORT, not {item!r}")
        jobs.append({"job_name": job, "static_configs": [{"targets": [address]}]})
    # JSON is YAML: no YAML library needed in this launcher.
    return json.dumps({"global": {"scrape_interval": interval, "evaluation_interval": interval},
                       "scrape_configs": jobs}, indent=2) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--scrape", action="append", default=[], metavar="JOB=HOST:PORT")
    # 1 s: the demo's rates over 10 s windows must react within the few seconds a fault lasts.
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--retention", default="1d")
    ap.add_argument("--binary", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    args = ap.parse_args()
    home = Path(os.environ.get("CHAOSLAB_SERVICE_DIR") or ".chaoslab/prometheus").resolve()
    (home / "data").mkdir(parents=True, exist_ok=True)
    conf = home / "prometheus.yml"
    conf.write_text(config(args.scrape, args.interval))
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"prometheus.py: {args.binary} is not installed (Debian: apt-get install prometheus)")
    os.execv(args.binary, [
        args.binary, f"--config.file={conf}", f"--storage.tsdb.path={home / 'data'}",
        f"--storage.tsdb.retention.time={args.retention}",
        f"--web.listen-address=127.0.0.1:{args.port}",
        f"--web.console.templates={home}", f"--web.console.libraries={home}",
    ])


if __name__ == "__main__":
    main()
