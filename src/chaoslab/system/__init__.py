"""What chaoslab touches on the machine itself: cgroups (v1 and v2), nftables, network
namespaces for test hosts, a process's clock through libfaketime, and the capability checks
behind ``chaoslab doctor``. The faults, the stack and the platforms build on these; nothing
here imports anything of chaoslab above ``errors`` and ``units``."""
