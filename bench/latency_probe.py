#!/usr/bin/env python3
"""Open-loop latency probe: GET a path at a fixed rate on one keep-alive connection and print
"p50_ms p99_ms count". A saturating load generator (wrk) measures the machine it shares cores
with; a fixed, light rate measures how responsive the server stays.

usage: latency_probe.py HOST PORT PATH SECONDS RATE
"""
import http.client
import sys
import time


def main() -> None:
    host, port, path, seconds, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    conn = http.client.HTTPConnection(host, port, timeout=10)
    latencies = []
    interval = 1.0 / rate
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000.0)
        next_at += interval
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"{pick(0.50):.3f} {pick(0.99):.3f} {len(latencies)}")


if __name__ == "__main__":
    main()
