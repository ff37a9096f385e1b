"""Category 6, Health.Watch and Check answer SERVING on all three services."""

from __future__ import annotations

import grpc

from bench.adversarial.harness import Campaign
from bench.adversarial.verdicts import ACCEPTED, BAD, CLEAN


def category_health(c: Campaign) -> None:
    """Health.Watch (and Check) on every service: SERVING, with and without the token."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for kind in c.servers:
        full = c.services[kind].full_name
        for chan_label, chan in (("with token", c.channels[kind]), ("no token", c.bare[kind])):
            stub = health_pb2_grpc.HealthStub(chan)
            for service, wanted in (
                ("", "SERVING"),
                (full, "SERVING"),
                ("no.such.Service", "SERVICE_UNKNOWN"),
            ):
                label = f"{kind} Watch({service!r}) {chan_label}"
                try:
                    stream = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=10)
                    first = next(iter(stream))
                    stream.cancel()
                    status = health_pb2.HealthCheckResponse.ServingStatus.Name(first.status)
                except grpc.RpcError as exc:
                    clean = wanted == "SERVICE_UNKNOWN" and exc.code() == grpc.StatusCode.NOT_FOUND
                    c.record(
                        "6",
                        label,
                        CLEAN if clean else BAD,
                        f"{exc.code().name}: {(exc.details() or '')[:160]}",
                    )
                    continue
                c.record(
                    "6",
                    label,
                    ACCEPTED if status == wanted else BAD,
                    "" if status == wanted else f"streamed {status}, not {wanted}",
                )
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
                c.record(
                    "6",
                    f"{kind} Check {chan_label}",
                    ACCEPTED if status == health_pb2.HealthCheckResponse.SERVING else BAD,
                    f"status {status}",
                )
            except grpc.RpcError as exc:
                c.record("6", f"{kind} Check {chan_label}", BAD, exc.code().name)
