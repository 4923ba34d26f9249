"""The reference streaming pipeline of seeds 003 and 001 (docs/pipeline.md).

gateway (HTTP ingest) -> producer -> Kafka-protocol broker (Tansu on S3) -> consumer ->
PostgreSQL (+ Redis cache, S3 batch archive, dead-letter topic). Its own distribution,
chaoslab-pipeline (systems/pipeline), outside chaoslab's wheel: chaoslab never imports it, and
it imports nothing of chaoslab.
"""
