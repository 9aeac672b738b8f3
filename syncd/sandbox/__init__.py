"""The built-in sandbox: a Shutterstock-compatible API emulator on 127.0.0.1 for the demo, tests and trials.

    from syncd.sandbox import Sandbox, FaultRule

    with Sandbox(seed=1, licenses=40) as sb:
        httpx.get(f"{sb.url}/v2/images/licenses", headers={"Authorization": "Bearer sandbox-token"})

Module map: ``kinds`` (how each media type is spelled in the API), ``data`` (deterministic
records), ``history`` (the mutable catalogue), ``content`` (generated file bytes),
``tokens`` (signed download links), ``ratelimit``, ``faults``, ``api`` (endpoints),
``server`` (HTTP plumbing), ``sandbox`` (this facade and ``serve``).
"""

from syncd.sandbox.faults import FaultRule
from syncd.sandbox.sandbox import Call, Sandbox, serve

__all__ = ["Call", "FaultRule", "Sandbox", "serve"]
