"""Where targets live beyond local processes: Docker (Engine API) and Kubernetes (API, Chaos Mesh).

Each platform module turns a target spec into a ``ResolvedTarget`` (plain data the fault ledger
can store) and offers the few platform actions faults need. Imported lazily: ``chaoslab --help``
never loads a platform SDK.
"""
