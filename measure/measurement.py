"""One engine measured on one dataset: WER clean and noisy, speed, memory and energy -> a BenchRow.

Runs in its own process (see measure.bench), so load time and peak memory belong to this engine alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import load_dataset
from asr_engines.calibration.noise import NoiseMixer, NoiseSpec, noisy_draw
from asr_engines.manifest import EngineManifest
from asr_engines.measure.machine_load import LoadWatch
from asr_engines.measure.memory import CONTAMINATION_MB, MemoryWatcher
from asr_engines.measure.meters import Measurement, open_meter
from asr_engines.measure.results import BenchRow
from asr_engines.measure.wer import UNJUDGEABLE_WER_PCT, corpus_wer
from asr_engines.runtime.backends import share_thread_pool
from asr_engines.runtime.recognizer import Recognizer, load_recognizer
from asr_engines.runtime.whisper import PRECISION_DEFAULT, TrimMargin
from asr_engines.variants import PRECISIONS, Precision


@dataclass(frozen=True)
class BenchSettings:
    """Everything a measurement depends on (also what makes two runs comparable)."""

    dataset: str
    noise: NoiseSpec | None = NoiseSpec("study")
    noise_draws: int = 3
    seed: int = 0
    limit: int | None = None
    warmup: int = 2
    threads: int | None = None
    trim_margin_s: TrimMargin = PRECISION_DEFAULT  # Whisper's encoder (runtime/whisper.py)
    meter: str = "auto"
    meter_root: str = "/"
    sample_hz: float | None = None
    min_window_s: float = 2.0  # energy windows shorter than this repeat the clean pass
    skip_noisy_above: float = UNJUDGEABLE_WER_PCT  # clean WER (%) at or above which the noisy passes are skipped
    progress: bool = True


def measure_engine(path: str, settings: BenchSettings, baseline_w: float | None, idle_system_mb: float) -> BenchRow:
    """Load the engine at `path` and measure it as `settings` say (see BenchRow for what comes back)."""
    from tqdm import tqdm

    utterances = load_dataset(settings.dataset)[: settings.limit]
    audio = [utterance.load() for utterance in utterances]
    references = [utterance.text for utterance in utterances]
    audio_s = sum(len(samples) for samples in audio) / SAMPLE_RATE
    noisy_sets = _noisy_sets(utterances, audio, settings)

    meter = open_meter(settings.meter, Path(settings.meter_root), settings.sample_hz)
    meter.start()
    try:
        with MemoryWatcher(idle_system_mb) as memory:
            share_thread_pool(settings.threads)  # as the command line runs engines; this process is the engine's own
            started = time.perf_counter()
            recognizer = load_recognizer(path, threads=settings.threads, trim_margin_s=settings.trim_margin_s)
            load_s = time.perf_counter() - started
            for samples in audio[: settings.warmup]:
                recognizer.transcribe(samples)
            bar = tqdm(total=len(audio) * (1 + len(noisy_sets)), desc=recognizer.name, unit="utt",
                       disable=not settings.progress, leave=False)
            machine = LoadWatch(judge_load_before=False)  # the load average still holds the engine measured before
            machine.begin()
            with meter.window("clean") as clean_window:
                hypotheses, latencies = _transcribe_all(recognizer, audio, bar)
            machine_load = machine.end()
            energy, repeats = clean_window.measurement, 1
            if meter.available and energy.duration_s < settings.min_window_s:
                repeats = math.ceil(settings.min_window_s / max(energy.duration_s, 1e-3))
                with meter.window("clean-repeated") as repeated:
                    for _ in range(repeats):
                        _transcribe_all(recognizer, audio, None)
                energy = repeated.measurement
        # Scored after the memory watcher closed: the normaliser's imports are not the engine's memory. The noisy
        # passes, after it too, time and meter nothing; they run only for a model whose clean transcripts mean
        # something (random weights read about 100 % WER, clean or noisy alike).
        wer_clean = corpus_wer(references, hypotheses).wer
        noisy_note = "" if wer_clean < settings.skip_noisy_above or not noisy_sets else (
            f"not measured: {wer_clean:.0f} % WER on clean audio, the model does not transcribe (random weights?)")
        noisy_hypotheses = [] if noisy_note else [_transcribe_all(recognizer, noisy, bar)[0] for noisy in noisy_sets]
        bar.close()
        recognizer.close()
    finally:
        meter.stop()
    noisy_wers = [corpus_wer(references, hypotheses_noisy).wer for hypotheses_noisy in noisy_hypotheses]

    inference_s = float(np.sum(latencies))
    return BenchRow(
        engine=recognizer.name, model=recognizer.manifest.model, backend=recognizer.backend,
        precision=precision_run(recognizer.manifest), variant=recognizer.variant,
        device=recognizer.device, threads=settings.threads, utterances=len(audio), audio_s=round(audio_s, 3),
        wer_clean=wer_clean,
        wer_noisy=float(np.mean(noisy_wers)) if noisy_wers else None,
        wer_noisy_std=float(np.std(noisy_wers, ddof=1)) if len(noisy_wers) > 1 else None,
        wer_noisy_draws=noisy_wers, noise=str(settings.noise) if settings.noise else None,
        rtfx=audio_s / inference_s,
        latency_p50_ms=float(np.percentile(latencies, 50) * 1000),
        latency_p90_ms=float(np.percentile(latencies, 90) * 1000),
        latency_p99_ms=float(np.percentile(latencies, 99) * 1000),
        load_s=load_s, peak_rss_mb=memory.peaks.rss_mb, system_mem_mb=memory.peaks.system_mb,
        gpu_mem_mb=memory.peaks.gpu_mb, system_mem_note=_system_memory_note(memory.peaks, recognizer.device),
        **_energy_columns(energy, repeats, baseline_w, audio_s, len(audio), meter),
        machine_quiet=machine_load.quiet, machine_load=machine_load.as_dict(),
        extra={"build": recognizer.manifest.build, "decoding": recognizer.decoding(),
               "int8_budget": recognizer.manifest.int8_budget, "int8_forms": recognizer.manifest.int8_forms,
               **({"wer_noisy_note": noisy_note} if noisy_note else {})},
    )


def precision_run(manifest: EngineManifest) -> Precision:
    """The precision that really runs: the built variant's, except where the backend reports its layers (TensorRT)
    and none runs at it; then the lowest precision some layer does run at."""
    built = manifest.precision
    counts: dict[str, int] = {}
    for part in manifest.build.values():
        for precision, count in (part.get("layer_precisions") or {}).items():
            counts[precision] = counts.get(precision, 0) + count
    if not counts or counts.get(str(built), 0):
        return built
    return next((precision for precision in reversed(PRECISIONS) if counts.get(str(precision), 0)), built)


def _system_memory_note(peaks, device: str) -> str:
    """Why the system-wide figure cannot stand for this engine: other processes rose beside it, or (a GPU whose
    per-process memory cannot be read) it mixes the GPU's share with theirs."""
    if peaks.gpu_mb is None and device != "cpu":
        return ("includes this engine's GPU memory and other processes' alike: per-process GPU memory needs NVML, or "
                "root on a Jetson (nvmap)")
    if peaks.others_mb > CONTAMINATION_MB:
        return f"contaminated: other processes' memory rose by {peaks.others_mb:.0f} MB during the run"
    return ""


def _noisy_sets(utterances, audio: list[np.ndarray], settings: BenchSettings) -> list[list[np.ndarray]]:
    """Every noise draw of every utterance, made before any timing starts."""
    if not settings.noise or settings.noise_draws < 1:
        return []
    mixer = NoiseMixer(settings.noise, {u.id: a for u, a in zip(utterances, audio)})
    return [
        [mixer.add(samples, noisy_draw(settings.seed, draw, index), utterance.id)
         for index, (utterance, samples) in enumerate(zip(utterances, audio))]
        for draw in range(settings.noise_draws)
    ]


def _transcribe_all(recognizer: Recognizer, audio: list[np.ndarray], bar) -> tuple[list[str], np.ndarray]:
    texts, latencies = [], []
    for samples in audio:
        started = time.perf_counter()
        texts.append(recognizer.transcribe(samples))
        latencies.append(time.perf_counter() - started)
        if bar is not None:
            bar.update()
    return texts, np.asarray(latencies)


def _energy_columns(energy: Measurement, repeats: int, baseline_w: float | None, audio_s: float,
                    utterances: int, meter) -> dict:
    """Energy of one clean pass (gross and net of the idle baseline) and how it was measured.

    Where the source keeps an energy counter (NVML, RAPL) the counter is the figure; the trapezoids of the
    sampled power are kept beside it (`energy_trapezoid_j`)."""
    trapezoid = energy.total_j / repeats if energy.total_j is not None else None
    counter = energy.counter_energy_j["total"] / repeats if energy.counter_energy_j else None
    gross = counter if counter is not None else trapezoid
    duration = energy.duration_s / repeats
    net = gross - baseline_w * duration if gross is not None and baseline_w is not None else None
    return {
        "energy_j": gross, "energy_net_j": net, "baseline_w": baseline_w,
        "mean_power_w": gross / duration if gross is not None and duration > 0 else None,
        "j_per_audio_s": net / audio_s if net is not None else None,
        "j_per_utterance": net / utterances if net is not None else None,
        "energy_rails_j": {rail: joules / repeats for rail, joules in energy.energy_j.items()} if energy.energy_j else None,
        "energy_counter_j": counter, "energy_trapezoid_j": trapezoid, "energy_reliable": energy.reliable, "energy_repeats": repeats,
        "energy_note": energy.note, "meter": meter.name,
        "rail": meter.total_rail or ("sum of rails" if meter.available else "none"),
        "gpu_rail": meter.gpu_rail, "sample_hz": energy.sample_hz, "sensor_faults": energy.faults,
        "sensor_averaging": meter.averaging, "meter_info": meter.info(),
    }
