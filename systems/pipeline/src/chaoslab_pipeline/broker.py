"""``python -m chaoslab_pipeline.broker --port 9092 [--advertise PORT] [--s3-url URL --bucket B | --memory]``

Tansu 0.6.0 on 127.0.0.1. With ``--s3-url`` it keeps everything (topics, offsets, consumer
groups, producer state) as objects in the bucket, through the ``object_store`` crate's
standard variables: AWS_ENDPOINT, AWS_ALLOW_HTTP=true for a plain-HTTP endpoint,
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION; it does not create the
bucket, so this wrapper does (retrying until the endpoint answers), then execs tansu.
``--advertise`` is the port clients are told to use: the fault proxy's, so every Kafka
connection goes through it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from chaoslab_pipeline.tools import tansu

KEY = "pipeline"


def ensure_bucket(url: str, bucket: str, deadline: float) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                      region_name="us-east-1", config=Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1}))
    end = time.monotonic() + deadline
    while True:
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except Exception:
            try:
                s3.create_bucket(Bucket=bucket)
                return
            except Exception as exc:
                if time.monotonic() > end:
                    raise SystemExit(f"chaoslab_pipeline.broker: S3 at {url} unusable: {exc}") from None
                time.sleep(0.5)


def main(av: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chaoslab_pipeline.broker")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--host", default="127.0.0.1", help="listen address (a container's own: 0.0.0.0)")
    p.add_argument("--advertise", type=int, help="port advertised to clients (default: --port)")
    p.add_argument("--advertise-host", default="127.0.0.1", help="host advertised to clients (the proxy's)")
    p.add_argument("--s3-url", help="S3 endpoint, e.g. http://127.0.0.1:8333")
    p.add_argument("--bucket", default="tansu")
    p.add_argument("--memory", action="store_true", help="keep everything in memory (lost on restart)")
    a = p.parse_args(av)
    env = dict(os.environ)
    if a.memory or not a.s3_url:
        engine = "memory://tansu/"
    else:
        ensure_bucket(a.s3_url, a.bucket, 60.0)
        engine = f"s3://{a.bucket}/"
        env.update(AWS_ENDPOINT=a.s3_url, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID=KEY,
                   AWS_SECRET_ACCESS_KEY=KEY, AWS_DEFAULT_REGION="us-east-1")
    adv = a.advertise or a.port
    cmd = [str(tansu()), "broker", "--listener-url", f"tcp://{a.host}:{a.port}",
           "--advertised-listener-url", f"tcp://{a.advertise_host}:{adv}", "--storage-engine", engine]
    os.execve(cmd[0], cmd, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
