"""A tiny gRPC health check: ``python -m greenprune.rpc.healthcheck ADDRESS``; exit 0 on SERVING.

Used by the compose healthchecks. Health is never behind the bearer token, so none is sent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    """Returns the serving status name of ``service`` at ``address``, or an error description."""
    with grpc.insecure_channel(address) as chan:
        try:
            response = health_pb2_grpc.HealthStub(chan).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: Sequence[str] | None = None) -> int:
    """Checks one address; prints the status and returns 0 when it is SERVING, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m greenprune.rpc.healthcheck", description=__doc__
    )
    parser.add_argument("address", help="HOST:PORT of a greenprune gRPC server")
    parser.add_argument("--service", default="", help="a service name; empty means the server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (default 3)")
    args = parser.parse_args(argv)
    result = check(args.address, args.service, args.timeout)
    print(f"{args.address}: {result}", file=sys.stdout if result == "SERVING" else sys.stderr)
    return 0 if result == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
