"""What the simulator plays: the scripted trainings around the anchor and the older prediction history.

Only data lives here; `story.py` turns it into jobs. Times are scenario seconds
relative to the anchor at speed 1 (the simulator divides them by its speed).
"""

from __future__ import annotations

from dataclasses import dataclass

from local.replicate_simulator.log_scripts import CUDA_OOM, LOG_STYLES

OUTCOMES = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True, kw_only=True)
class ScenarioTraining:
    """One scripted training. Its log's length decides how long it runs, so it is pinned by one end.

    Give `starts_at` (when it starts processing) or `ends_at` (when it reaches
    its outcome), not both. A failed or canceled one stops `stops_after`
    seconds into its log; a failed one then prints a CUDA out-of-memory traceback.
    """

    key: str  # the name tests and `scenario_ids` use for it
    model: str
    log_style: str  # a key of LOG_STYLES
    steps: int
    steps_per_second: float
    images: int
    queue_seconds: float  # in `starting` before it starts
    outcome: str  # succeeded, failed or canceled
    starts_at: float | None = None
    ends_at: float | None = None
    stops_after: float | None = None
    nanosecond_timestamps: bool = False  # some Replicate answers carry 9 fraction digits
    source: str = "api"
    config_name: str | None = None
    destination: str = "jobsync-demo/lora"  # the model its weights are pushed to

    def __post_init__(self) -> None:
        if (self.starts_at is None) == (self.ends_at is None):
            raise ValueError(f"{self.key}: give starts_at or ends_at, not both or neither")
        if self.log_style not in LOG_STYLES:
            raise ValueError(f"{self.key}: unknown log style {self.log_style!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.key}: outcome must be one of {sorted(OUTCOMES)}, not {self.outcome!r}")
        if (self.stops_after is None) != (self.outcome == "succeeded"):
            raise ValueError(f"{self.key}: a failed or canceled training needs stops_after, a succeeded one has none")


# Offsets at speed 1 (seconds from the anchor, each within about a second):
#   flux-long       created  -96, processing from  -77, succeeds at ~+1230 (the ~20 min one)
#   sdxl-queued     created   -7, starting → processing at ~+32, succeeds at ~+610
#   flux-finishing  created -558, processing, succeeds at ~+97
#   sdxl-oom        created -136, processing, fails (CUDA out of memory) at ~+169
#   flux-canceled   created  -49, processing, canceled at ~+229
#   sdxl-new        created  +75 (absent before), processing at ~+97, succeeds at ~+318
#   flux-earlier    finished at -1734 (its logs are there until data removal at ~+1866)
SCENARIO: tuple[ScenarioTraining, ...] = (
    ScenarioTraining(
        key="flux-long",
        model="jobsync-demo/flux-lora-trainer",
        log_style="flux",
        steps=1000,
        steps_per_second=0.82,
        images=24,
        queue_seconds=18.2,
        outcome="succeeded",
        starts_at=-77.2,
        nanosecond_timestamps=True,
        config_name="portrait-lora-v3",
        destination="jobsync-demo/portrait-lora",
    ),
    ScenarioTraining(
        key="sdxl-queued",
        model="jobsync-demo/simpletuner-sdxl",
        log_style="simpletuner",
        steps=800,
        steps_per_second=1.6,
        images=36,
        queue_seconds=37.8,
        outcome="succeeded",
        starts_at=31.5,
        config_name="sdxl-subject-v2",
        destination="jobsync-demo/sdxl-subject",
    ),
    ScenarioTraining(
        key="flux-finishing",
        model="jobsync-demo/flux-lora-trainer",
        log_style="flux",
        steps=600,
        steps_per_second=1.1,
        images=18,
        queue_seconds=24.5,
        outcome="succeeded",
        ends_at=96.0,
        nanosecond_timestamps=True,
        config_name="product-shots",
        destination="jobsync-demo/product-lora",
    ),
    ScenarioTraining(
        key="sdxl-oom",
        model="jobsync-demo/simpletuner-sdxl",
        log_style="simpletuner",
        steps=1200,
        steps_per_second=1.3,
        images=48,
        queue_seconds=12.0,
        outcome="failed",
        ends_at=167.5,
        stops_after=291.0,
        config_name="sdxl-hires-batch8",
        destination="jobsync-demo/sdxl-hires",
    ),
    ScenarioTraining(
        key="flux-canceled",
        model="jobsync-demo/flux-lora-trainer",
        log_style="flux",
        steps=1000,
        steps_per_second=0.9,
        images=20,
        queue_seconds=15.3,
        outcome="canceled",
        ends_at=228.4,
        stops_after=262.0,
        nanosecond_timestamps=True,
        config_name="style-watercolor",
        destination="jobsync-demo/watercolor-lora",
    ),
    ScenarioTraining(
        key="sdxl-new",
        model="jobsync-demo/simpletuner-sdxl",
        log_style="simpletuner",
        steps=300,
        steps_per_second=2.0,
        images=16,
        queue_seconds=21.7,
        outcome="succeeded",
        starts_at=96.4,
        config_name="sdxl-quick",
        destination="jobsync-demo/sdxl-quick",
    ),
    ScenarioTraining(
        key="flux-earlier",
        model="jobsync-demo/flux-lora-trainer",
        log_style="flux",
        steps=800,
        steps_per_second=1.0,
        images=30,
        queue_seconds=40.2,
        outcome="succeeded",
        ends_at=-1735.0,
        nanosecond_timestamps=True,
        source="web",
        config_name="portrait-lora-v2",
        destination="jobsync-demo/portrait-lora",
    ),
)


@dataclass(frozen=True, kw_only=True)
class HistoryModel:
    """A model the older predictions ran, and how often and how long."""

    name: str
    weight: float  # its share of the history
    run_seconds: tuple[float, float]  # low, high
    output_kind: str  # "webp", "png" (one image URL) or "text" (streamed tokens)


HISTORY_MODELS: tuple[HistoryModel, ...] = (
    HistoryModel(name="black-forest-labs/flux-schnell", weight=0.42, run_seconds=(0.6, 2.5), output_kind="webp"),
    HistoryModel(name="black-forest-labs/flux-dev", weight=0.2, run_seconds=(2.0, 9.0), output_kind="webp"),
    HistoryModel(name="stability-ai/sdxl", weight=0.14, run_seconds=(3.0, 12.0), output_kind="png"),
    HistoryModel(name="meta/meta-llama-3-8b-instruct", weight=0.14, run_seconds=(0.5, 6.0), output_kind="text"),
    HistoryModel(name="jobsync-demo/portrait-lora", weight=0.1, run_seconds=(3.0, 10.0), output_kind="webp"),
)
# How the older predictions ended, by share (in this order: the seeded draws depend on it).
HISTORY_STATUS_WEIGHTS: dict[str, float] = {"succeeded": 0.84, "failed": 0.07, "canceled": 0.05, "aborted": 0.04}
PREDICTION_ERRORS = (
    "NSFW content detected. Try running it again, or try a different prompt.",
    "Prediction interrupted; please retry (code: PA)",
    CUDA_OOM,
)
PROMPTS = (
    "a photo of TOK hiking in the alps, golden hour",
    "a watercolor fox in a misty forest",
    "an isometric city block at night, neon signs",
    "a ceramic teapot on a linen tablecloth, studio light",
)
