"""Run the exporter benchmarks and print a report with the baselines measured in the same run.

    .venv/bin/python -m bench                      # everything, 20 s trials
    .venv/bin/python -m bench --parts cost,scrape  # some parts
    .venv/bin/python -m bench --duration 5         # shorter trials (a quick look, not a result)
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

from bench import cost, memory, scrape, throughput
from bench.loadgen import LoadShape

PARTS = ("throughput", "cost", "memory", "scrape")
# Rates tried in order until one fails, per consumer (events/s).
LADDERS = {
    "exporter": [20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000, 160_000, 180_000, 200_000],
    "celery-state": [4_000, 6_000, 8_000, 10_000, 12_000, 14_000, 16_000, 18_000, 20_000, 24_000],
    "redis-py": [20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 140_000, 160_000, 180_000, 200_000],
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{datetime.date.today()} · {platform.node()} · {cpu} · {os.cpu_count()} cores · "
            f"Python {platform.python_version()}")


def run_throughput(duration: float) -> None:
    print(f"\n## Sustained event rate ({duration:.0f} s trials, zero loss, drained within 1 s)\n")
    print("| consumer | rate (events/s) | published at | published | taken | lost | drain s | max omem | "
          "CPU µs/event | result |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    load = throughput.Load(LoadShape(), int(max(max(r) for r in LADDERS.values()) * duration),
                           max(max(r) for r in LADDERS.values()))
    best: dict[str, throughput.Trial | None] = {}

    def report(t: throughput.Trial) -> None:
        unit = "" if throughput.CONSUMERS[t.consumer].counts_events else " msgs"
        print(f"| {t.consumer} | {t.rate:,.0f} | {t.publish_rate:,.0f} | {t.expected:,}{unit} | {t.taken:,} | "
              f"{t.lost:,} | {t.drain_seconds:.2f} | {t.max_omem_bytes / 1e6:.1f} MB | "
              f"{t.cpu_us_per_event:.1f} | {t.result} |", flush=True)

    limits: dict[str, str] = {}
    for name, rates in LADDERS.items():
        trials = throughput.ladder(name, rates, duration, load, report)
        passed = [t for t in trials if t.passed]
        best[name] = passed[-1] if passed else None
        last = trials[-1]
        limits[name] = ("the publisher's ceiling, not the consumer's" if last.publisher_bound else
                        "the top of the ladder" if last.passed else "the next rate failed")
    print()
    for name, trial in best.items():
        if trial is None:
            print(f"- {name}: sustained none of the rates tried")
        else:
            print(f"- {name}: sustained {trial.rate:,.0f} events/s at {trial.cpu_us_per_event:.1f} µs CPU/event "
                  f"({limits[name]})")
    exporter, state = best.get("exporter"), best.get("celery-state")
    if exporter and state:
        at_least = "" if limits["exporter"] == "the next rate failed" else "at least "
        print(f"- exporter / Celery EventReceiver+State: {at_least}{exporter.rate / state.rate:.1f}× the rate, "
              f"{state.cpu_us_per_event / exporter.cpu_us_per_event:.1f}× less CPU per event")


def run_cost() -> None:
    r = cost.measure()
    print(f"\n## In-process cost per event ({r.events:,} recorded events)\n")
    print("| path | µs/event | exporter is faster by |")
    print("|---|---:|---:|")
    print(f"| exporter decode+aggregate (raw payloads) | {r.exporter_us:.2f} | — |")
    print(f"| Celery State.event (events already decoded) | {r.celery_state_us:.2f} | {r.vs_state:.1f}× |")
    print(f"| Celery kombu decode + EventReceiver + State.event | {r.celery_full_us:.2f} | {r.vs_full:.1f}× |")


def run_memory() -> None:
    print("\n## Resident memory, all task ids distinct\n")
    print("| consumer | RSS at start | after 100k events | after 1M events | growth 100k→1M |")
    print("|---|---:|---:|---:|---:|")
    for consumer in ("exporter", "celery-state"):
        m = memory.measure(consumer)
        lo, hi = memory.CHECKPOINTS
        print(f"| {consumer} | {m[0] / 2**20:.1f} MiB | {m[lo] / 2**20:.1f} MiB | {m[hi] / 2**20:.1f} MiB | "
              f"{(m[hi] - m[lo]) / 2**20:+.1f} MiB |", flush=True)


def run_scrape() -> None:
    c = scrape.render_cost()
    r = scrape.measure()
    print(f"\n## /metrics latency, {r.series_pairs:,} (worker, task name) pairs\n")
    print(f"- {r.samples:,} samples, {r.body_bytes / 1e6:.1f} MB of text")
    print(f"- quiet (no series changed since the last scrape): p50 {r.quiet.p50_ms:.1f} ms, "
          f"p90 {r.quiet.p90_ms:.1f} ms ({r.quiet.samples} scrapes)")
    print(f"- busy (every series changed since the last scrape): p50 {r.busy.p50_ms:.1f} ms, "
          f"p90 {r.busy.p90_ms:.1f} ms ({r.busy.samples} scrapes, {r.busy_discarded} discarded as early)")
    print("\nIn process, the same series, snapshot + text (no HTTP):\n")
    print("| renderer | ms | exporter is faster by |")
    print("|---|---:|---:|")
    print(f"| exporter, every series changed | {c.exporter_busy_ms:.1f} | — |")
    print(f"| exporter, no series changed | {c.exporter_quiet_ms:.1f} | — |")
    print(f"| prometheus_client generate_latest | {c.prometheus_client_ms:.1f} | "
          f"{c.prometheus_client_ms / c.exporter_busy_ms:.0f}× (busy), "
          f"{c.prometheus_client_ms / c.exporter_quiet_ms:.0f}× (quiet) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="celery-autopilot exporter benchmarks")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per throughput trial (default 20)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    print(f"# celery-autopilot benchmarks\n\n{machine()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), '-m', 'bench', *(argv or sys.argv[1:])])}")
    runners = {"throughput": lambda: run_throughput(args.duration), "cost": run_cost,
               "memory": run_memory, "scrape": run_scrape}
    for part in parts:
        runners[part]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
