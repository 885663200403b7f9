"""Training logs as a function of time, written the way SimpleTuner and tqdm write them.

A job's log is written once, when the simulator starts, as a `LogScript`: the
text plus the moment each piece of it appears. What a client sees at any
moment is a prefix of it, so logs only ever grow.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LogScript:
    """A log that grows over time: the text written by `times[i]` seconds is `text[:ends[i]]`."""

    text: str
    times: tuple[float, ...]
    ends: tuple[int, ...]
    duration: float

    def at(self, elapsed: float) -> str:
        written = bisect.bisect_right(self.times, elapsed)
        return self.text[: self.ends[written - 1]] if written else ""


class LogScriptWriter:
    """Writes a log the way a process does: lines, and tqdm bars rewritten in place with `\\r`."""

    def __init__(self) -> None:
        self.t = 0.0
        self._parts: list[tuple[float, str]] = []
        self._bar_open = False

    def wait(self, seconds: float) -> None:
        self.t += seconds

    def line(self, text: str, after: float = 0.0) -> None:
        self.t += after
        # A print while a bar is on screen starts on a fresh line, as with tqdm.
        self._parts.append((self.t, ("\n" if self._bar_open else "") + text + "\n"))
        self._bar_open = False

    def bar(self, text: str, after: float = 0.0) -> None:
        self.t += after
        self._parts.append((self.t, "\r" + text))
        self._bar_open = True

    def cut(self, at: float) -> None:
        """Forget everything written after `at` seconds (a crash or a cancel then)."""
        self._parts = [part for part in self._parts if part[0] <= at]
        self.t = at
        self._bar_open = bool(self._parts) and self._parts[-1][1].startswith("\r")

    def build(self) -> LogScript:
        ends, used = [], 0
        for _, text in self._parts:
            used += len(text)
            ends.append(used)
        return LogScript(
            text="".join(text for _, text in self._parts),
            times=tuple(t for t, _ in self._parts),
            ends=tuple(ends),
            duration=self.t,
        )


_BAR_WIDTH = 10
_PARTIAL_BLOCKS = " ▏▎▍▌▋▊▉"


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def tqdm_line(desc: str, done: int, total: int, elapsed: float, postfix: str = "") -> str:
    """One tqdm status line: `desc:  45%|████▌     | 450/1000 [05:12<06:21,  1.44it/s, postfix]`."""
    fraction = done / total
    full, partial = divmod(int(fraction * _BAR_WIDTH * 8), 8)
    bar = ("█" * full + (_PARTIAL_BLOCKS[partial] if full < _BAR_WIDTH else "")).ljust(_BAR_WIDTH)
    head = f"{desc}: {fraction * 100:3.0f}%|{bar}| {done}/{total}"
    if done == 0 or elapsed <= 0:
        return f"{head} [00:00<?, ?it/s]"
    rate = done / elapsed
    speed = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
    tail = f", {postfix}" if postfix else ""
    return f"{head} [{_interval(elapsed)}<{_interval((total - done) / rate)}, {speed}{tail}]"


def _loss(rng: random.Random, step: int, steps: int, start: float, floor: float) -> float:
    return (floor + (start - floor) * math.exp(-step / (0.35 * steps))) * rng.uniform(0.86, 1.14)


def flux_log(rng: random.Random, steps: int, steps_per_second: float, images: int) -> LogScriptWriter:
    """A FLUX LoRA trainer: preprocessing, warm-up, a tqdm bar, checkpoints with validation samples."""
    desc = "flux_train_replicate"
    w = LogScriptWriter()
    w.line(f"Using seed: {rng.randrange(1, 65536)}")
    w.line("Loading dataset: extracting input_images.zip", 0.8)
    w.line(f"Loading dataset: found {images} images and {images} captions", 2.4)
    w.line(f"Preprocessing {images} images: resizing into 512, 768 and 1024 px buckets", 1.6)
    w.line("Preprocessing: caching latents with the FLUX VAE", 2.9)
    w.line(f"Preprocessing: cached latents for {images}/{images} images", 4.1)
    w.line("Loading FLUX.1-dev transformer, T5 and CLIP text encoders onto cuda:0", 2.2)
    w.line("Warming up the model: compiling attention kernels ...", 5.7)
    w.line(f"Warming up: first forward and backward pass took {rng.uniform(6, 9):.1f}s", 7.4)
    every, checkpoint_every = 2, max(steps // 4, 2)
    loss_start, loss_floor, lr = rng.uniform(0.42, 0.55), rng.uniform(0.17, 0.24), 4e-4
    elapsed = 0.0
    w.bar(tqdm_line(desc, 0, steps, 0.0), 1.0)
    for done in range(every, steps + 1, every):
        step_time = every / steps_per_second * rng.uniform(0.93, 1.07)
        elapsed += step_time
        loss = _loss(rng, done, steps, loss_start, loss_floor)
        w.bar(tqdm_line(desc, done, steps, elapsed, f"lr: {lr:.1e} loss: {loss:.3e}"), step_time)
        if done % checkpoint_every == 0 and done < steps:
            paused_from = w.t
            w.line(f"Saving checkpoint to /src/output/{desc}/{desc}_{done:09d}.safetensors", 0.3)
            w.line(f"Running validation at step {done}: generating 2 sample images", rng.uniform(3.0, 5.0))
            w.line(f"Validation samples written to /src/output/{desc}/samples/", rng.uniform(9.0, 13.0))
            w.wait(0.7)
            elapsed += w.t - paused_from
    w.line(f"Saving checkpoint to /src/output/{desc}/{desc}.safetensors", 0.6)
    w.line("Packing LoRA weights and config into trained_model.tar", 3.5)
    w.line(f"Training complete: {steps} steps in {_interval(elapsed)}", 4.2)
    return w


def simpletuner_log(rng: random.Random, steps: int, steps_per_second: float, images: int) -> LogScriptWriter:
    """SimpleTuner (SDXL LoRA): `Step N/M - loss: x` lines, `[TRAINING]` reports, validation, checkpoints."""
    w = LogScriptWriter()
    w.line(f"SimpleTuner: sdxl lora training on 1x NVIDIA H100 80GB HBM3, seed {rng.randrange(1, 65536)}")
    w.line("Loading configuration from config/config.json", 0.6)
    w.line(f"Loading dataset 'subject' from /src/datasets/subject ({images} images)", 1.3)
    w.line("Preprocessing: computing aspect ratio buckets", 1.9)
    w.line(f"Preprocessing: encoded VAE latents for {images}/{images} images", 5.8)
    w.line(f"Preprocessing: cached text embeddings for {images} captions", 3.6)
    w.line("Loading SDXL base 1.0 unet, vae and text encoders", 2.7)
    warmup = max(steps // 20, 10)
    w.line(f"Warming up: learning rate warmup over {warmup} steps", 4.8)
    w.line("Warming up: first optimizer pass done", 3.9)
    every, report_every = 5, 50
    checkpoint_every = max(steps // 4 // every * every, every)
    loss_start, loss_floor, base_lr = rng.uniform(0.13, 0.17), rng.uniform(0.045, 0.065), 1e-4
    for done in range(every, steps + 1, every):
        step_time = every / steps_per_second * rng.uniform(0.92, 1.08)
        w.line(f"Step {done}/{steps} - loss: {_loss(rng, done, steps, loss_start, loss_floor):.4f}", step_time)
        if done % report_every == 0:
            lr = base_lr * min(1.0, done / warmup)
            w.line(
                f"[TRAINING] Step {done}/{steps} ({100 * done / steps:.1f}%) - lr: {lr:.1e}, "
                f"{every / step_time:.2f} steps/s",
                0.02,
            )
        if done % checkpoint_every == 0 and done < steps:
            w.line(f"Running validation at step {done}: 2 prompts, 30 inference steps each", 0.4)
            w.line(f"Validation images written to /src/output/validation/step-{done}/", rng.uniform(8.0, 11.0))
            w.line(f"Saving checkpoint to /src/output/checkpoint-{done}", 0.3)
            w.line(f"Checkpoint saved ({rng.uniform(160, 190):.1f} MB)", rng.uniform(2.5, 4.0))
    w.line("Saving checkpoint to /src/output/checkpoint-final", 0.5)
    w.line("Exporting LoRA weights to /src/output/pytorch_lora_weights.safetensors", 3.1)
    w.line(f"Training complete after {steps} steps; packing trained_model.tar", 2.6)
    return w


CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of "
    "79.11 GiB of which 1.37 GiB is free. Of the allocated memory 75.02 GiB is allocated by PyTorch, and "
    "1.21 GiB is reserved by PyTorch but unallocated."
)
OOM_TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "/src/train.py", line 61, in <module>',
    "    main()",
    '  File "/src/helpers/training/trainer.py", line 2480, in train',
    "    self.accelerator.backward(loss)",
    '  File "/usr/local/lib/python3.11/site-packages/torch/autograd/__init__.py", line 289, in backward',
    "    _engine_run_backward(",
    CUDA_OOM,
)

# A trainer's log, by the name a scenario gives it: (rng, steps, steps per second, images) → the whole log.
LOG_STYLES: dict[str, Callable[[random.Random, int, float, int], LogScriptWriter]] = {
    "flux": flux_log,
    "simpletuner": simpletuner_log,
}
