"""Intervals (greenprune.core.stats) and real metering (greenprune.core.energy).

The meter's CPU time of the work, what other processes did meanwhile, and CodeCarbon beside it.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprune.core.energy.cpu_time import (
    CpuUsage,
    disturbance,
    disturbance_threshold,
    measurement_threads,
    torch_threads,
    usable_cpus,
)
from greenprune.core.energy.meter import EnergyMeter
from greenprune.core.energy.quiet import wait_for_quiet_machine
from greenprune.core.energy.readings import CPU_TIME, METHODS, WindowReading, summarize
from greenprune.core.stats import Interval, interval


def _busy(seconds: float) -> int:
    """Spin for ``seconds`` of wall time (its CPU time shrinks if the machine is contended)."""
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        count += 1
    return count


def _work(units: int) -> int:
    """A fixed amount of CPU work: about 0.1 s per unit on this machine's cores."""
    total = 0
    for _ in range(units):
        total += sum(i * i for i in range(3_000_000))
    return total


# --------------------------------------------------------------------------- interval()


def test_single_value_is_a_degenerate_interval() -> None:
    assert interval([3.5]) == Interval(
        median=3.5, low=3.5, high=3.5, count=1, method="single-value"
    )


def test_small_samples_use_student_t_around_the_mean() -> None:
    values = [1.0, 2.0, 4.0]
    result = interval(values)
    half = 4.302652729911275 * statistics.stdev(values) / math.sqrt(3)  # t(0.975, 2 dof)
    assert result.method == "student-t-mean"
    assert result.median == 2.0
    assert result.low == pytest.approx(statistics.fmean(values) - half)
    assert result.high == pytest.approx(statistics.fmean(values) + half)


@pytest.mark.parametrize(("n", "rank"), [(6, 1), (10, 2), (20, 6), (100, 40)])
def test_larger_samples_use_order_statistics_of_the_median(n: int, rank: int) -> None:
    values = [float(v) for v in range(1, n + 1)]
    random.Random(n).shuffle(values)
    result = interval(values)
    assert result.method == "order-statistic-median"
    # Known ranks of the 95% distribution-free median interval (binomial tables).
    assert (result.low, result.high) == (float(rank), float(n + 1 - rank))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40
    ),
    confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
)
def test_interval_always_contains_the_median(values: list[float], confidence: float) -> None:
    result = interval(values, confidence=confidence)
    assert result.low <= result.median <= result.high
    assert result.median == statistics.median(values)
    assert result.count == len(values)


@pytest.mark.parametrize("n", [3, 5, 8, 15])
def test_interval_reaches_its_coverage_on_normal_data(n: int) -> None:
    rng = random.Random(1234 + n)
    trials = 2000
    hits = 0
    for _ in range(trials):
        result = interval([rng.gauss(10.0, 2.0) for _ in range(n)])
        hits += result.low <= 10.0 <= result.high
    # 95% nominal; the binomial SE of 2000 trials is 0.5%, order statistics over-cover.
    assert hits / trials >= 0.93


@pytest.mark.parametrize(
    ("values", "confidence"),
    [([], 0.95), ([1.0, math.nan], 0.95), ([1.0, math.inf], 0.95), ([1.0], 0.0), ([1.0], 1.0)],
)
def test_interval_rejects_bad_input(values: list[float], confidence: float) -> None:
    with pytest.raises(ValueError):
        interval(values, confidence=confidence)


# --------------------------------------------------------------------------- metering


@pytest.fixture(scope="module")
def idle_meter(tmp_path_factory: pytest.TempPathFactory) -> EnergyMeter:
    meter = EnergyMeter("cpu", tmp_path_factory.mktemp("meter"))
    meter.measure_idle(0.5)
    return meter


def test_meter_names_how_each_component_is_measured(idle_meter: EnergyMeter) -> None:
    by_name = {c.component: c for c in idle_meter.components}
    assert {"cpu", "ram"} <= by_name.keys()
    assert all(c.method in METHODS for c in idle_meter.components)
    assert by_name["ram"].method == "constant-estimate" and by_name["ram"].estimated
    assert by_name[CPU_TIME].method == "cpu-time-estimate" and by_name[CPU_TIME].estimated
    assert idle_meter.watts_per_cpu > 0
    if not Path("/sys/class/powercap/intel-rapl").exists():
        assert by_name["cpu"].method == "cpu-load-estimate" and by_name["cpu"].estimated
        # Without a counter the headline is the process's CPU time, an estimate.
        assert idle_meter.headline_component == CPU_TIME
    else:
        assert idle_meter.headline_component == "cpu" and by_name["cpu"].method == "rapl"
    assert set(idle_meter.idle_watts) == set(by_name)
    # Sleeping costs the process next to no CPU time: the idle baseline of the estimate.
    assert idle_meter.idle_watts[CPU_TIME] < 0.05 * idle_meter.watts_per_cpu


def test_busy_window_costs_more_than_an_idle_one(idle_meter: EnergyMeter) -> None:
    with idle_meter.window() as idle:
        time.sleep(0.6)
    with idle_meter.window() as busy:
        _busy(0.6)
    assert busy.wall_seconds >= 0.6
    assert busy.metered_seconds >= busy.wall_seconds
    assert busy.joules["cpu"] > 3 * idle.joules["cpu"] >= 0
    assert busy.joules[CPU_TIME] > 3 * idle.joules[CPU_TIME] >= 0
    assert busy.cpu_seconds > 10 * idle.cpu_seconds
    assert busy.peak_rss_bytes > 10_000_000
    assert busy.peak_cuda_bytes == 0 and busy.gpu_shared is False


def test_window_shorter_than_codecarbons_refresh_keeps_its_energy(
    idle_meter: EnergyMeter,
) -> None:
    """A 30 ms window (CodeCarbon skips a stop-time measurement under 50 ms) is still metered.

    Skipped, the window's energy was 0. CodeCarbon times its measurements itself, so on a
    loaded machine its span and the window's wall time differ by a scheduling delay, a large
    share of 30 ms: the RAM energy is held to at least half of its power over the window.
    """
    with idle_meter.window() as reading:
        end = time.process_time() + 0.03
        while time.process_time() < end:
            pass
    ram_watts = idle_meter.idle_watts["ram"]
    assert reading.joules["ram"] > 0.5 * ram_watts * reading.metered_seconds
    assert reading.joules["cpu"] > 0


def _neighbour(cores: int) -> list[subprocess.Popen[bytes]]:
    """``cores`` processes spinning for at most a minute, beside the test."""
    return [_spin_in_another_process(60) for _ in range(cores)]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.kill()
        process.wait(10)


def _loop(units: int) -> int:
    """Integer arithmetic in a tight loop: CPU work whose data stays in the first-level cache."""
    total = 0
    for i in range(units * 250_000):
        total += i
    return total


@pytest.fixture(scope="module")
def cpu_meter(tmp_path_factory: pytest.TempPathFactory) -> EnergyMeter:
    """A meter as the profile uses it: CPU time only, no CodeCarbon thread in the windows."""
    meter = EnergyMeter("cpu", tmp_path_factory.mktemp("cpu-meter"), secondary=False)
    meter.measure_idle(0.3)
    return meter


@pytest.mark.parametrize("neighbours", [0, 1], ids=["alone", "beside-a-busy-process"])
@pytest.mark.parametrize("kind", ["python", "torch"])
def test_twice_the_work_reads_twice_the_cpu_figure(
    cpu_meter: EnergyMeter, kind: str, neighbours: int
) -> None:
    """The headline CPU figure follows the work, not the wall clock, beside a busy process too.

    As the profile measures: windows of one unit and of two units of work alternate in 48
    pairs, so whatever else the machine does falls on both. Each pair's ratio is a paired
    comparison; their median is what a burst on a neighbouring core cannot move (on a 2-core
    machine the other test worker may share this core's cache, or its hyperthread, for a few
    pairs). The summed windows carry the other-process readings. The torch work runs with the
    meter's threads held for the whole test, as a job holds them.
    """
    import torch

    a = torch.randn(256, 256)

    def matmuls(units: int) -> None:
        for _ in range(units * 30):
            a @ a

    work: Any = _loop if kind == "python" else matmuls
    busy = _neighbour(neighbours)
    try:
        with torch_threads(cpu_meter.threads):
            work(1)  # warm
            slices: dict[int, list[WindowReading]] = {1: [], 2: []}
            for index in range(48):
                for units in (1, 2) if index % 2 == 0 else (2, 1):
                    with cpu_meter.window() as reading:
                        work(units)
                    slices[units].append(reading)
    finally:
        _stop(busy)

    def figure(window: WindowReading) -> float:
        return window.net_joules(CPU_TIME, cpu_meter.idle_watts)

    pair_ratios = [figure(two) / figure(one) for one, two in zip(slices[1], slices[2], strict=True)]
    assert statistics.median(pair_ratios) == pytest.approx(2.0, abs=0.1), sorted(pair_ratios)
    windows = {units: WindowReading.combine(parts) for units, parts in slices.items()}
    if neighbours:  # the neighbour was seen, and did not stand in for work
        assert windows[2].other_cpu_seconds > 0.5 * windows[2].wall_seconds


def test_a_window_beside_a_busy_neighbour_is_flagged(tmp_path: Path) -> None:
    # Measuring with every usable CPU leaves no core free: one busy neighbour disturbs.
    meter = EnergyMeter("cpu", tmp_path, threads=usable_cpus(), secondary=False)
    busy = _neighbour(1)
    try:
        time.sleep(0.3)
        with meter.window() as reading:
            _work(3)
    finally:
        _stop(busy)
    assert reading.other_cpu_seconds > 0.25 * reading.wall_seconds
    assert reading.disturbed_windows == 1 and "other processes used" in reading.disturbance
    assert meter.judge(reading)


def test_disturbance_counts_the_cores_left_free() -> None:
    def usage(other_cores: float) -> CpuUsage:
        return CpuUsage(2.0, 1.9, other_cores * 2.0, 0.0, 0.0)

    # 4 CPUs, 2 measuring threads: 2 cores free, plus the margin.
    assert disturbance_threshold(2, 4) == pytest.approx(2.25)
    assert disturbance(usage(2.0), 2, 4) is None
    assert disturbance(usage(2.5), 2, 4) == "other processes used 2.50 cores (threshold 2.25)"
    # torch's own choice (0) counts as every CPU: any neighbour beyond the margin disturbs.
    assert disturbance(usage(0.5), 0, 4) is not None
    assert disturbance(usage(0.0), 2, 4, gpu_shared=True) == "another process used the GPU"


def test_measuring_threads_leave_cores_free() -> None:
    assert measurement_threads("cpu", 3) == 3
    assert measurement_threads("cuda:0") == 0  # torch's choice: the GPU does the work
    assert measurement_threads("cpu") == max(1, usable_cpus() // 2)
    assert measurement_threads("cpu") < usable_cpus() or usable_cpus() == 1


def test_window_writes_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    meter = EnergyMeter("cpu", workdir)
    with meter.window():
        _busy(0.1)
    assert list(workdir.iterdir()) == [] and list(cwd.iterdir()) == []


def test_window_closes_its_tracker_when_the_work_fails(idle_meter: EnergyMeter) -> None:
    with pytest.raises(ZeroDivisionError), idle_meter.window():
        _ = 1 / 0
    with idle_meter.window() as after:
        _busy(0.05)
    assert after.joules["cpu"] > 0


def _spin_in_another_process(seconds: float) -> subprocess.Popen[bytes]:
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def test_quiet_check_waits_for_another_busy_process_to_finish() -> None:
    busy = _spin_in_another_process(1.5)
    try:
        time.sleep(0.3)
        check = wait_for_quiet_machine(timeout=4)
    finally:
        busy.wait(10)
    assert check.waited_seconds >= 1.0  # it did not call the machine quiet while the loop ran
    # On a machine shared with other work it may stay busy after the loop; when it went
    # quiet, it says so with the load it saw.
    if check.quiet:
        assert check.other_cores <= 0.25


def test_quiet_check_gives_up_on_a_machine_that_stays_busy() -> None:
    busy = _spin_in_another_process(10)
    try:
        time.sleep(0.3)
        check = wait_for_quiet_machine(timeout=1.5)
        gave_up_while_busy = busy.poll() is None  # not a wall-clock bound: the loop still ran
    finally:
        busy.kill()
        busy.wait(10)
    assert not check.quiet and check.other_cores >= 0.5
    assert check.waited_seconds >= 1.5 and gave_up_while_busy
    assert check.describe().startswith("still busy (")


def test_summarize_reports_net_below_gross_with_the_headline(idle_meter: EnergyMeter) -> None:
    readings = []
    for _ in range(3):
        with idle_meter.window() as reading:
            _work(3)
        readings.append(reading)
    report = summarize(readings, idle_meter, tokens=3000, samples=30)
    headline = idle_meter.headline_component
    assert report.headline_component == headline and report.repeats == 3
    assert len(report.repeat_net_joules) == 3
    cpu = next(c for c in report.components if c.component == headline)
    assert report.net_joules == cpu.net_joules and report.gross_joules == cpu.gross_joules
    assert report.energy_method == cpu.method
    assert report.cpu_seconds.median == pytest.approx(
        statistics.median(r.cpu_seconds for r in readings)
    )
    assert report.cpu_seconds.median > 0 and report.threads == idle_meter.threads
    assert report.watts_per_cpu == idle_meter.watts_per_cpu and report.windows == 3
    # CodeCarbon's process-mode CPU figure is the same CPU time x TDP / CPUs, sampled.
    if cpu.component == CPU_TIME:
        codecarbon = next(c for c in report.components if c.component == "cpu")
        assert codecarbon.gross_joules.median == pytest.approx(cpu.gross_joules.median, rel=0.1)
    for component in report.components:
        assert component.net_joules.median <= component.gross_joules.median
        assert component.net_joules.low <= component.net_joules.median
        assert component.net_joules.median <= component.net_joules.high
        expected_net = [
            r.joules[component.component] - component.idle_watts * r.metered_seconds
            for r in readings
        ]
        assert component.net_joules.median == pytest.approx(statistics.median(expected_net))
    assert report.estimated == cpu.estimated
    assert report.joules_per_token == pytest.approx(report.net_joules.median / 3000)
    assert report.joules_per_sample == pytest.approx(report.net_joules.median / 30)
    rates = [3000 / r.wall_seconds for r in readings]
    assert report.tokens_per_second.median == pytest.approx(statistics.median(rates))
    walls = [r.wall_seconds for r in readings]
    assert report.wall_seconds.median == pytest.approx(statistics.median(walls))
    assert report.peak_rss_bytes == max(r.peak_rss_bytes for r in readings)
    assert report.device_name and "cpu:" in report.hardware and "ram:" in report.hardware
    assert "cpu-time: cpu-time-estimate" in report.hardware
    assert report.gpu_shared is False


def test_summarize_without_idle_baseline_has_net_equal_gross(tmp_path: Path) -> None:
    meter = EnergyMeter("cpu", tmp_path)
    with meter.window() as reading:
        _busy(0.1)
    report = summarize([reading], meter, tokens=0, samples=0)
    for component in report.components:
        assert component.idle_watts == 0.0
        assert component.net_joules == component.gross_joules
    assert report.joules_per_token == 0.0 and report.joules_per_sample == 0.0


def test_combine_sums_energy_and_time_and_keeps_peaks() -> None:
    first = WindowReading(
        {"cpu": 1.0, "ram": 2.0}, 1.1, 1.0, 0.5, 0.2, 0.0, 2000.0, 1, 1, 0, "", 100, 0, False
    )
    second = WindowReading(
        {"cpu": 3.0, "ram": 4.0}, 2.2, 2.0, 1.5, 1.0, 0.1, 3000.0, 1, 1, 1, "busy", 50, 7, True
    )
    total = WindowReading.combine([first, second])
    assert total.joules == {"cpu": 4.0, "ram": 6.0}
    assert total.metered_seconds == pytest.approx(3.3) and total.wall_seconds == 3.0
    assert (total.cpu_seconds, total.other_cpu_seconds) == (2.0, 1.2)
    assert total.cpu_mhz == pytest.approx((2000.0 + 2 * 3000.0) / 3)
    assert (total.windows, total.disturbed_windows, total.disturbance) == (2, 1, "busy")
    assert (total.peak_rss_bytes, total.peak_cuda_bytes, total.gpu_shared) == (100, 7, True)


def test_a_meter_without_counters_runs_no_codecarbon_when_asked(tmp_path: Path) -> None:
    meter = EnergyMeter("cpu", tmp_path, secondary=False)
    with meter.window() as reading:
        _work(1)
    if meter.headline_component == CPU_TIME:
        assert [c.component for c in meter.components] == [CPU_TIME]
        assert set(reading.joules) == {CPU_TIME}
    assert reading.joules[CPU_TIME] == pytest.approx(reading.cpu_seconds * meter.watts_per_cpu)


def test_meter_rejects_unknown_tracking_mode() -> None:
    with pytest.raises(ValueError):
        EnergyMeter("cpu", os.getcwd(), tracking_mode="galaxy")
