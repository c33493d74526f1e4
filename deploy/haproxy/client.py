"""A long-lived gRPC client for rebalance.sh: one channel (one HTTP/2 connection at a
time), CONCURRENCY Hello calls in flight, continuously, for SECONDS seconds.

grpcio reconnects after a GOAWAY and retries, transparently, a call the server never
took (the gRPC specification's transparent retry), as grpc-go and grpc-java do. Prints
one line: `summary calls=N ok=N failed=N codes=...`; exits 1 if a call failed.

Usage: client.py ADDR CONCURRENCY SECONDS  (the generated modules on PYTHONPATH)
"""

import asyncio
import collections
import sys
import time

import grpc

from basic.service.v1 import service_pb2
from basic.v1 import basic_pb2_grpc


async def main(addr: str, concurrency: int, seconds: float) -> int:
    ok = 0
    failed = collections.Counter()
    until = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = basic_pb2_grpc.BasicServiceStub(channel)

        async def caller() -> None:
            nonlocal ok
            while time.monotonic() < until:
                try:
                    await stub.Hello(service_pb2.HelloRequest(message="Ada"), timeout=10)
                    ok += 1
                except grpc.aio.AioRpcError as err:
                    failed[f"{err.code().name}: {err.details()}"] += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    total_failed = sum(failed.values())
    codes = ",".join(f"{k}:{v}" for k, v in failed.items()) or "-"
    print(f"summary calls={ok + total_failed} ok={ok} failed={total_failed} codes={codes}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))
