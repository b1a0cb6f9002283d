"""The Flower article's autoscaling script, as printed, scales a real worker through the actuator.

The script (tests/fixtures/article/autoscale.py) is the article's block byte for byte; the run
changes only its FLOWER_URL line, to the actuator's address (the article's AUTH and WORKER_NAME
already fit: the actuator takes admin:secret and the worker is named celery@worker1). The
function it calls but never defines, ``get_worker_pool_size``, is written as a Flower user would
(tests/fixtures/article/get_worker_pool_size.py). The harness runs the text in a namespace
whose ``time`` module has ``sleep`` replaced: instead of a minute, a round waits until the
worker's own stats show the size the script aimed at (or a deadline passes), and the loop ends
once the script has looked at a pool already at its target.
"""
from __future__ import annotations

import builtins
import difflib
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from celery import Celery

from tests.actuator.conftest import AUTH
from tests.support.inspection import pool_size
from tests.support.polling import Timeout, wait_for
from tests.support.workers import ROOT

ARTICLE = ROOT.parent / "shared" / "seeds" / "000_1ed0e4d25a889fec.txt"
FIXTURES = ROOT / "tests" / "fixtures" / "article"
SCRIPT = FIXTURES / "autoscale.py"
POOL_SIZE_FUNCTION = FIXTURES / "get_worker_pool_size.py"
WORKER = "celery@worker1"
STARTING_POOL = 2
# What stays queued while the worker holds its prefetch (4 per process, 10 processes) must still
# be 1,000 or more, so that the script's target is max(2, min(10, 1000 // 100)) = 10 throughout.
BACKLOG = 1100
EXPECTED_TARGET = 10
MAX_ROUNDS = 5
# Standing in for the script's minute: how long a round waits for the pool to reach its target.
ROUND_DEADLINE = 40.0


def article_block(text: str) -> str:
    start = text.index("import requests\nimport time\n")
    return text[start:text.index("\n", text.index("time.sleep(60)", start)) + 1]


def pointed(script: str, **constants: str) -> str:
    """``script`` with the assignment line of each constant replaced, and nothing else."""
    lines = script.splitlines(keepends=True)
    for name, value in constants.items():
        [index] = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
        lines[index] = f"{name} = {value!r}\n"
    return "".join(lines)


class StopScript(Exception):
    """Raised from the script's ``time.sleep`` to end its ``while True`` loop."""


def namespace_with_sleep(sleep: Callable[[float], None]) -> dict[str, Any]:
    """Globals for running the script in which ``import time`` gives a ``time`` whose sleep is ``sleep``."""
    patched_time = types.ModuleType("time")
    patched_time.__dict__.update(vars(time))
    patched_time.sleep = sleep

    def import_(name: str, *args: Any, **kwargs: Any) -> Any:
        return patched_time if name == "time" else builtins.__import__(name, *args, **kwargs)
    return {"__name__": "article_autoscale", "__builtins__": {**vars(builtins), "__import__": import_}}


@dataclass
class Round:
    queue_len: int
    target: int
    asked_seconds: float
    pool_after: int


@dataclass
class Rounds:
    """The script's ``time.sleep``: records each round, waits for the pool instead of a minute."""

    namespace: dict[str, Any]
    observe_pool: Callable[[], int]
    done: list[Round] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        target = self.namespace["target_workers"]
        try:
            wait_for(lambda: self.observe_pool() == target, timeout=ROUND_DEADLINE, interval=0.2,
                     what=f"the pool to reach the script's target {target}")
        except Timeout:
            pass  # the next round sees what the pool did, as it would after a minute
        size = self.observe_pool()
        self.done.append(Round(self.namespace["queue_len"], target, seconds, size))
        already_there = len(self.done) >= 2 and self.done[-2].pool_after == target
        if already_there or len(self.done) >= MAX_ROUNDS:
            raise StopScript


@pytest.fixture(scope="module")
def actuator(start_workers, start_actuator):
    start_workers({"name": WORKER, "concurrency": STARTING_POOL})
    return start_actuator("rules: []\n")


def test_the_fixture_is_the_articles_script_verbatim():
    if not ARTICLE.exists():
        pytest.skip(f"the article is not beside this checkout ({ARTICLE})")
    assert SCRIPT.read_text(encoding="utf-8") == article_block(ARTICLE.read_text(encoding="utf-8"))


def test_only_the_url_constant_is_pointed_at_the_actuator():
    script = SCRIPT.read_text(encoding="utf-8")
    run = pointed(script, FLOWER_URL="http://127.0.0.1:9809")
    changed = [line for line in difflib.ndiff(script.splitlines(), run.splitlines()) if line[:1] in "+-"]
    assert changed == ['- FLOWER_URL = "http://localhost:5555"', "+ FLOWER_URL = 'http://127.0.0.1:9809'"]
    assert 'AUTH = ("admin", "secret")' in script and AUTH == ("admin", "secret")
    assert f'WORKER_NAME = "{WORKER}"' in script


def test_the_script_grows_the_worker_to_its_target_and_stops_there(actuator, inspector, module_broker_url):
    producer = Celery("producer", broker=module_broker_url, set_as_current=False)
    try:
        with producer.producer_or_acquire() as publisher:
            for _ in range(BACKLOG):
                producer.send_task("demo.sleep", args=(30,), queue="celery", producer=publisher)
    finally:
        producer.close()
    assert pool_size(inspector, WORKER) == STARTING_POOL

    rounds = Rounds({}, lambda: pool_size(inspector, WORKER))
    rounds.namespace.update(namespace_with_sleep(rounds.sleep))
    exec(compile(POOL_SIZE_FUNCTION.read_text(encoding="utf-8"), str(POOL_SIZE_FUNCTION), "exec"),
         rounds.namespace)
    script = pointed(SCRIPT.read_text(encoding="utf-8"), FLOWER_URL=actuator.url)
    with pytest.raises(StopScript):
        exec(compile(script, str(SCRIPT), "exec"), rounds.namespace)

    assert len(rounds.done) == 2, rounds.done
    assert all(r.queue_len >= 1000 and r.target == EXPECTED_TARGET and r.asked_seconds == 60
               for r in rounds.done), rounds.done
    # The worker's own stats: ten processes, while max-concurrency still says what -c said.
    stats = inspector.control.inspect(destination=[WORKER], timeout=2, limit=1).stats()[WORKER]
    assert len(stats["pool"]["processes"]) == EXPECTED_TARGET
    assert stats["pool"]["max-concurrency"] == STARTING_POOL
    # One grow by the difference, then nothing: the second round found the pool at its target.
    recorded = requests.get(f"{actuator.url}/actions", params={"source": "api"}, auth=AUTH, timeout=5).json()
    assert [(a["command"], a["arguments"], a["outcome"]) for a in recorded["actions"]] == [
        ("pool_grow", {"n": EXPECTED_TARGET - STARTING_POOL}, "sent")]
