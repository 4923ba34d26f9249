"""The command line: ``chaoslab`` (main.py) and the commands of the core (run, validate, suite,
report, recover, halt, doctor, hosts, exporter, profile) with the terminal's live view of a run
(console.py). Packages with commands of their own (stack, proxy, demo, discover, serve) keep
them beside their code; main.py names every command lazily so ``--help`` imports none."""
