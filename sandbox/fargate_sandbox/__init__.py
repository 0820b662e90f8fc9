"""The local sandbox: emulated AWS (moto plus the rules moto lacks), a real OCI registry, a Kubernetes emulator.

Outside production code, and independent of it: neither imports the other (the sandbox runs the real handlers in
its Lambda workers, as Lambda does). docs/architecture.md has the map.
"""
