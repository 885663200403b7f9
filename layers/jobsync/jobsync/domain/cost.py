"""What a job cost: provider-reported active seconds times its hardware's price."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Replicate's published prices, USD per second.
PRICE_PER_SECOND_USD: dict[str, float] = {
    "cpu": 0.000100,
    "gpu-t4": 0.000225,
    "gpu-a40-small": 0.000575,
    "gpu-a40-large": 0.000725,
    "gpu-l40s": 0.000975,
    "gpu-a100-large": 0.001400,
    "gpu-h100": 0.001525,
}
# Replicate names multi-GPU hardware both ways: `gpu-2x-l40s` and `gpu-h100-2x`.
_MULTI_GPU_PREFIX = re.compile(r"^gpu-(\d+)x-(.+)$")
_MULTI_GPU_SUFFIX = re.compile(r"^gpu-(.+)-(\d+)x$")


def price_per_second(sku: str) -> float | None:
    """Per-second price of a SKU; an N-GPU SKU costs N times its single-GPU SKU; None when unknown."""
    if sku in PRICE_PER_SECOND_USD:
        return PRICE_PER_SECOND_USD[sku]
    prefix, suffix = _MULTI_GPU_PREFIX.match(sku), _MULTI_GPU_SUFFIX.match(sku)
    if prefix:
        count, name = int(prefix.group(1)), prefix.group(2)
    elif suffix:
        count, name = int(suffix.group(2)), suffix.group(1)
    else:
        return None
    single = PRICE_PER_SECOND_USD.get(f"gpu-{name}")
    return None if single is None or count < 1 else single * count


@dataclass(frozen=True)
class HardwarePricing:
    """Which SKU each model runs on (the provider does not say) and what it costs."""

    hardware_by_model: dict[str, str] = field(default_factory=dict)
    default_sku: str = "gpu-h100"

    def sku_for(self, model: str | None) -> str:
        return self.hardware_by_model.get(model or "", self.default_sku)

    def cost_usd(self, model: str | None, predict_time: float | None) -> tuple[float | None, str]:
        sku = self.sku_for(model)
        price = price_per_second(sku)
        if predict_time is None or price is None:
            return None, sku
        return round(predict_time * price, 6), sku
