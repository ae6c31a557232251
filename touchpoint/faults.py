"""``touchpoint faults``: the production faults, injected while traffic flows, and the figures after.

A seeded synthetic scenario is produced at a steady rate while real worker processes are
SIGKILLed and restarted (once in the middle of table recovery), scaled from one to two and back
(rebalances), and ClickHouse is killed for tens of seconds. When the traffic is in, the set of
event ids in ``customer_touchpoints`` is compared with the set produced: every id lost or stored
twice is counted. ``journeys``, ``customer_scores``, ``dead_letters`` and the metrics are compared
with what the scenario says too.

The negative control runs workers with the unsafe ``unsafe_ack_before_write`` switch and makes
loss certain, not lucky: ClickHouse is down while events arrive, so their rows sit in memory
while their offsets are committed; then the worker is SIGKILLed. The suite must report lost > 0.

Needs the embedded local stack (the ClickHouse outage kills a child server); see
``tests/integration/test_faults.py`` for the CI-sized run.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.model import CHANNELS
from pipeline.synthetic import MESSAGES_PER_CUSTOMER, Scenario, generate
from sinks.migrations import migrate
from touchpoint.generate import produce
from touchpoint.harness import (
    WorkerProcess,
    clickhouse_client,
    metric_value,
    uncommitted_messages,
    wait_until,
)
from touchpoint.localstack import LocalStack
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings
from touchpoint.topics import ensure_topics

RECOVERY_MARKER = "Restoring state from changelog topics"
SPAN_MS = 48 * 3600_000

Say = Callable[[str], None]

# Journeys whose touchpoint_count differs from the touchpoints that name them, plus touchpoints
# naming a journey that does not exist: a replay that double-counted or orphaned shows up here.
JOURNEYS_DISAGREEING = """
SELECT countIf(touchpoint_count != referenced) + countIf(touchpoint_count = 0)
FROM
(
    SELECT journey_id, touchpoint_count FROM {db}.customer_journeys
)
FULL OUTER JOIN
(
    SELECT journey_id, count() AS referenced FROM {db}.customer_touchpoints WHERE late = 0 GROUP BY journey_id
) USING journey_id
"""


@dataclass
class FaultSummary:
    """The figures of one run; ``lost`` and ``duplicated`` must both be 0 unless it is the negative control."""

    unsafe: bool
    events_sent: int = 0
    messages_sent: int = 0
    kills: int = 0
    recovery_kills: int = 0
    outages: int = 0
    outage_seconds: float = 0.0
    rebalances: int = 0
    crashes: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    journeys_expected: int = 0
    journeys_found: int = 0
    journeys_inconsistent: int = 0
    customers_found: int = 0
    customers_without_score: int = 0
    dead_letters_expected: int = 0
    dead_letters_found: int = 0
    sink_rows_rejected: float = 0.0
    sink_blocked: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        mode = "NEGATIVE CONTROL (unsafe_ack_before_write)" if self.unsafe else "safe (ack after insert)"
        lines = [
            f"Touchpoint fault suite: {mode}",
            f"events sent:   {self.events_sent} valid events in {self.messages_sent} messages",
            f"kills:         {self.kills} SIGKILLs ({self.recovery_kills} during table recovery)",
            f"outages:       {self.outages} ClickHouse outage(s), {self.outage_seconds:.0f} s down in all",
            f"rebalances:    {self.rebalances} (scale 1 -> 2 -> 1 workers)",
            f"crashes:       {self.crashes} workers exited by themselves (restarted, as an orchestrator would)",
            f"lost:          {self.lost}",
            f"duplicated:    {self.duplicated}",
            f"unexpected:    {self.unexpected} stored ids that were never produced",
            f"journeys:      {self.journeys_found} found ({self.journeys_expected} in the manifest for "
            f"event-time-ordered streaming), {self.journeys_inconsistent} disagreeing with their touchpoints",
            f"customers:     {self.customers_found} with touchpoints, {self.customers_without_score} of them "
            "without a customer_scores row",
            f"dead letters:  {self.dead_letters_found} found, {self.dead_letters_expected} expected",
            f"metrics:       cx_sink_rows_rejected_total {self.sink_rows_rejected:.0f}, "
            f"cx_sink_blocked {self.sink_blocked:.0f} (last worker)",
            f"took:          {self.seconds:.0f} s",
        ]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


class Fleet:
    """The worker processes of one run: started, SIGKILLed, SIGTERMed, each with its own log."""

    def __init__(self, settings: Settings, workdir: Path, summary: FaultSummary, say: Say) -> None:
        self.settings, self.workdir, self.summary, self.say = settings, workdir, summary, say
        self.workers: list[WorkerProcess] = []
        self._started = 0

    def start(self) -> WorkerProcess:
        self._started += 1
        worker = WorkerProcess.start(self.settings, self.workdir / f"worker-{self._started}.log")
        self.workers.append(worker)
        return worker

    def kill(self, worker: WorkerProcess) -> None:
        worker.kill()
        self.workers.remove(worker)
        self.summary.kills += 1
        self.say(f"SIGKILL {worker.log_path.name}")

    def stop(self, worker: WorkerProcess) -> None:
        worker.stop(grace=self.settings.shutdown_grace_seconds + 10)
        self.workers.remove(worker)

    def restart(self, worker: WorkerProcess) -> WorkerProcess:
        self.kill(worker)
        return self.start()

    def stop_all(self) -> None:
        for worker in list(self.workers):
            self.stop(worker)

    def check_alive(self) -> None:
        """A worker that exited by itself is counted, noted and replaced, as an orchestrator would."""
        for worker in list(self.workers):
            if not worker.alive():
                self.workers.remove(worker)
                self.summary.crashes += 1
                self.summary.notes.append(f"{worker.log_path.name} exited by itself (code {worker.process.returncode})")
                self.say(f"{worker.log_path.name} exited by itself; starting a replacement")
                self.start()


def read_topics(settings: Settings) -> list[str]:
    """Every topic the worker's consumer group reads (not the changelogs, which are not committed)."""
    topics = settings.topics
    return [topics.channel(c) for c in CHANNELS] + [topics.identity, topics.identifiers, topics.customers, topics.dlq]


def scenario_for(events: int, seed: int) -> Scenario:
    """A scenario of about ``events`` messages (the generator sizes by customers)."""
    customers = max(2, math.ceil(events / MESSAGES_PER_CUSTOMER))
    return generate(customers=customers, seed=seed, start_ms=int(time.time() * 1000) - SPAN_MS)


def valid_event_ids(scenario: Scenario) -> list[str]:
    return [event_id for ids in scenario.manifest.valid_event_ids.values() for event_id in ids]


STORED_DEAD_LETTERS = "SELECT count() FROM {db}.dead_letters FINAL"
STORED_TOUCHPOINTS = "SELECT uniqExact(event_id) FROM {db}.touchpoints"


def stored_dead_letters(settings: Settings) -> int:
    return _polled_count(settings, STORED_DEAD_LETTERS)


def stored_touchpoints(settings: Settings) -> int:
    return _polled_count(settings, STORED_TOUCHPOINTS)


def _polled_count(settings: Settings, query: str) -> int:
    """A count read while waiting: -1 while ClickHouse is down (on purpose, during an outage)."""
    client = clickhouse_client(settings)
    try:
        return client.execute(query.format(db=settings.clickhouse.database))[0][0]
    except Exception:  # noqa: BLE001 - ClickHouse may be down on purpose while this is polled
        return -1
    finally:
        client.disconnect()


def compare(settings: Settings, scenario: Scenario, summary: FaultSummary) -> None:
    """Fill in lost, duplicated and the table counts from ClickHouse's views."""
    db = settings.clickhouse.database
    produced = set(valid_event_ids(scenario))
    client = clickhouse_client(settings)
    try:
        stored = Counter(event_id for (event_id,) in client.execute(f"SELECT event_id FROM {db}.customer_touchpoints"))
        summary.lost = len(produced - set(stored))
        summary.duplicated = sum(count - 1 for count in stored.values() if count > 1)
        summary.unexpected = len(set(stored) - produced)
        summary.journeys_expected = sum(scenario.manifest.journeys.values())
        summary.journeys_found = client.execute(f"SELECT count() FROM {db}.customer_journeys")[0][0]
        summary.journeys_inconsistent = client.execute(JOURNEYS_DISAGREEING.format(db=db))[0][0]
        summary.customers_found = client.execute(
            f"SELECT uniqExact(attributed_key) FROM {db}.customer_touchpoints")[0][0]
        summary.customers_without_score = client.execute(
            f"SELECT uniqExact(attributed_key) FROM {db}.customer_touchpoints WHERE attributed_key NOT IN "
            f"(SELECT customer_key FROM {db}.customer_scores)")[0][0]
        summary.dead_letters_expected = scenario.manifest.malformed
        summary.dead_letters_found = client.execute(STORED_DEAD_LETTERS.format(db=db))[0][0]
        if summary.dead_letters_found != summary.dead_letters_expected:
            found = dict(client.execute(f"SELECT topic, count() FROM {db}.dead_letters FINAL GROUP BY topic"))
            summary.notes.append("dead letters by source topic (found/expected): " + ", ".join(
                f"{topic} {found.get(f'{settings.topic_prefix}.{topic}', 0)}/{count}"
                for topic, count in sorted(Counter(m.topic for m in scenario.messages if not m.valid).items())))
    finally:
        client.disconnect()


def _start_traffic(settings: Settings, scenario: Scenario, rate: float, say: Say) -> tuple[threading.Thread, list[BaseException]]:
    """Produce the scenario in event-time order at ``rate`` messages/s on a background thread."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            produce(scenario, settings.kafka_bootstrap_servers, settings.topic_prefix, rate=rate,
                    progress=lambda n: say(f"produced {n}/{len(scenario.messages)}") if n % 10_000 == 0 else None,
                    client_config=kafka_python_config(settings))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="traffic", daemon=True)
    thread.start()
    return thread, errors


def _prepare(settings: Settings, scenario: Scenario, fleet: Fleet) -> Scenario:
    """Schema, topics, one worker, and the first event through it; returns the rest of the traffic."""
    migrate(settings.clickhouse)
    ensure_topics(settings)
    fleet.start()
    first = next(i for i, m in enumerate(scenario.messages) if m.valid and m.topic != "identity")
    produce(Scenario(scenario.messages[: first + 1], scenario.manifest), settings.kafka_bootstrap_servers,
            settings.topic_prefix, client_config=kafka_python_config(settings))

    def consuming() -> bool:
        fleet.check_alive()
        return stored_touchpoints(settings) >= 1

    wait_until(consuming, timeout=120, describe="the first worker consuming")
    return Scenario(scenario.messages[first + 1:], scenario.manifest)


def _pause(seconds: float, fleet: Fleet) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fleet.check_alive()
        time.sleep(0.5)


def _kill_during_recovery(fleet: Fleet, worker: WorkerProcess, timeout: float = 60) -> WorkerProcess:
    """Restart a worker, SIGKILL the new one as soon as it logs that it restores its tables, restart again."""
    fresh = fleet.restart(worker)
    wait_until(lambda: fresh.log_path.exists() and RECOVERY_MARKER in fresh.log_path.read_text(errors="replace"),
               timeout=timeout, interval=0.1, describe="table recovery to start")
    fleet.summary.recovery_kills += 1
    return fleet.restart(fresh)


def _wait_complete(settings: Settings, scenario: Scenario, fleet: Fleet, timeout: float, say: Say) -> None:
    """Until every event and dead letter is stored and the group has committed every topic it reads.

    Stored events alone were not enough: the schedule ends with a SIGKILL, and the comparison ran
    while the killed worker's dead letters and journey rows, never stored, waited for its
    replacement to replay them (a CI run counted 40 of 41 dead letters so, with every event in).
    """
    want = len(valid_event_ids(scenario))
    topics = read_topics(settings)

    def done() -> bool:
        fleet.check_alive()
        have = stored_touchpoints(settings)
        dead = stored_dead_letters(settings)
        say(f"stored {have}/{want} events, {dead}/{scenario.manifest.malformed} dead letters")
        return (have >= want and dead >= scenario.manifest.malformed
                and sum(uncommitted_messages(settings, topics).values()) == 0)

    wait_until(done, timeout, interval=3.0, describe="every produced event and dead letter stored and committed")


def run_fault_suite(
    settings: Settings,
    stack: LocalStack,
    workdir: Path,
    events: int = 100_000,
    seed: int = 5,
    outage_seconds: float = 30.0,
    produce_seconds: float | None = None,
    step_seconds: float = 8.0,
    say: Say = print,
) -> FaultSummary:
    """Produce about ``events`` messages while killing, rescaling and cutting ClickHouse; then compare.

    The faults follow one schedule, ``step_seconds`` apart, while the traffic is produced over
    ``produce_seconds`` (default: long enough for the whole schedule): a SIGKILL and restart; a
    restart killed during table recovery; scale to two workers and back; a ClickHouse outage of
    ``outage_seconds``; a last SIGKILL. Workers use ``settings`` as given (session timeout 6 s
    keeps rebalances quick).
    """
    started = time.monotonic()
    summary = FaultSummary(unsafe=settings.unsafe_ack_before_write)
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = scenario_for(events, seed)
    summary.messages_sent = len(scenario.messages)
    summary.events_sent = len(valid_event_ids(scenario))
    fleet = Fleet(settings, workdir, summary, say)
    try:
        rest = _prepare(settings, scenario, fleet)
        schedule_seconds = 6 * step_seconds + outage_seconds
        rate = len(rest.messages) / (produce_seconds or schedule_seconds)
        say(f"producing {len(rest.messages)} messages at {rate:.0f}/s while injecting faults")
        traffic, errors = _start_traffic(settings, rest, rate, say)

        # Workers are picked by position, not kept by name: one that crashed has been replaced.
        _pause(step_seconds, fleet)
        fleet.restart(fleet.workers[0])
        _pause(step_seconds, fleet)
        _kill_during_recovery(fleet, fleet.workers[0])
        _pause(step_seconds, fleet)
        fleet.start()
        summary.rebalances += 1
        say("scaled to 2 workers")
        _pause(2 * step_seconds, fleet)
        fleet.stop(fleet.workers[-1])
        summary.rebalances += 1
        say("scaled back to 1 worker")
        _pause(step_seconds, fleet)
        say(f"ClickHouse down for {outage_seconds:.0f} s")
        stack.restart_clickhouse(down_seconds=outage_seconds)
        summary.outages += 1
        summary.outage_seconds += outage_seconds
        _pause(step_seconds, fleet)
        fleet.restart(fleet.workers[0])

        traffic.join()
        if errors:
            raise errors[0]
        _wait_complete(settings, scenario, fleet, timeout=max(300.0, events / 200), say=say)
        time.sleep(settings.sink_flush_seconds * 4 + 1)  # the last flush of journey rows
        compare(settings, scenario, summary)
        exposition = fleet.workers[0].scrape()
        summary.sink_rows_rejected = metric_value(exposition, "cx_sink_rows_rejected_total")
        summary.sink_blocked = metric_value(exposition, "cx_sink_blocked")
    finally:
        fleet.stop_all()
        summary.seconds = time.monotonic() - started
    return summary


def run_negative_control(
    settings: Settings,
    stack: LocalStack,
    workdir: Path,
    events: int = 2_000,
    seed: int = 6,
    commit_wait_seconds: float = 30.0,
    say: Say = print,
) -> FaultSummary:
    """Loss made certain for an ack-before-write worker: commit while ClickHouse is down, then SIGKILL.

    With the safe sink the same steps lose nothing (the offsets cannot be committed while the rows
    are unstored); run it with ``unsafe_ack_before_write=False`` to see that.
    """
    started = time.monotonic()
    summary = FaultSummary(unsafe=settings.unsafe_ack_before_write)
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = scenario_for(events, seed)
    summary.messages_sent = len(scenario.messages)
    summary.events_sent = len(valid_event_ids(scenario))
    fleet = Fleet(settings, workdir, summary, say)
    try:
        rest = _prepare(settings, scenario, fleet)
        say("ClickHouse down; producing the traffic")
        stack.kill_clickhouse()
        outage_started = time.monotonic()
        produce(rest, settings.kafka_bootstrap_servers, settings.topic_prefix,
                client_config=kafka_python_config(settings))
        topics = read_topics(settings)
        try:
            # An unsafe worker commits events whose rows it only holds in memory; a safe one cannot.
            wait_until(lambda: sum(uncommitted_messages(settings, topics).values()) == 0,
                       timeout=commit_wait_seconds, describe="every message committed while ClickHouse is down")
            summary.notes.append("all offsets were committed while ClickHouse was down")
        except TimeoutError:
            summary.notes.append("offsets were not committed while ClickHouse was down (the sink holds them)")
        fleet.kill(fleet.workers[0])
        stack.start_clickhouse_again()
        summary.outages += 1
        summary.outage_seconds += time.monotonic() - outage_started
        fleet.start()

        # Everything still owed is replayed from Kafka: wait until the group has committed it all.
        def caught_up() -> bool:
            fleet.check_alive()
            return sum(uncommitted_messages(settings, topics).values()) == 0

        try:
            wait_until(caught_up, timeout=180, interval=2.0, describe="the restarted worker caught up")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; uncommitted {uncommitted_messages(settings, topics)}, "
                               f"{stored_touchpoints(settings)} events stored; see {fleet.workers[0].log_path}") from None
        time.sleep(settings.sink_flush_seconds * 4 + 1)
        compare(settings, scenario, summary)
    finally:
        fleet.stop_all()
        summary.seconds = time.monotonic() - started
    return summary


def run_faults_command(
    settings: Settings,
    events: int,
    outage_seconds: float,
    seed: int,
    negative_control: bool,
    say: Say = print,
) -> int:
    """``touchpoint faults``: run the suite on a fresh embedded stack, print the figures.

    Always starts its own ClickHouse (the outage kills it); uses the configured Kafka if set.
    Exit code 0 when the run is correct: nothing lost or duplicated, or, for the negative
    control, the loss was caught.
    """
    import uuid

    from touchpoint.localstack import start_local_stack

    workdir = Path(settings.data_dir).resolve() / "faults" / uuid.uuid4().hex[:8]
    stack = start_local_stack(settings.kafka_bootstrap_servers or None, None, workdir=workdir)
    try:
        suffix = workdir.name
        run_settings = settings.with_overrides(
            kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
            clickhouse_url=stack.clickhouse_url.rsplit("/", 1)[0] + f"/faults_{suffix}",
            topic_prefix=f"faults{suffix}", app_id=f"touchpoint-faults-{suffix}",
            data_dir=str(workdir / "worker"), session_timeout_seconds=6.0,
            unsafe_ack_before_write=negative_control,
        )
        say(f"local stack up: kafka {stack.kafka_bootstrap_servers}, "
            f"clickhouse {run_settings.clickhouse.masked_url()}, logs in {workdir}")
        if negative_control:
            summary = run_negative_control(run_settings, stack, workdir, events=events, seed=seed, say=say)
            ok = summary.lost > 0
        else:
            summary = run_fault_suite(run_settings, stack, workdir, events=events, seed=seed,
                                      outage_seconds=outage_seconds, say=say)
            ok = summary.lost == 0 and summary.duplicated == 0 and summary.unexpected == 0
        print(summary.render())
        print("RESULT: " + ("pass" if ok else "FAIL") +
              (" (the negative control must lose events)" if negative_control else ""))
        return 0 if ok else 1
    finally:
        stack.stop()
