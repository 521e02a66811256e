"""What a vehicle carries, as the plans name it: the gate systems' free text (`cargo`) to one of
a few categories, so that a cargo ban ("国五及以下不得运输建筑垃圾、渣土、砂石、矿石、肥料灰渣")
can be judged. Pure; depends on nothing but the standard library."""

from __future__ import annotations

from typing import Literal

Cargo = Literal["construction_waste", "muck", "sand_gravel", "ore", "fertiliser_ash", "coal"]

# category -> words that name it (Chinese as gate systems write it, and the English key)
_WORDS: dict[Cargo, tuple[str, ...]] = {
    "construction_waste": ("建筑垃圾", "建渣", "拆迁垃圾", "construction_waste"),
    "muck": ("渣土", "弃土", "土方", "muck"),
    "sand_gravel": ("砂石", "沙石", "砂子", "沙子", "石子", "碎石", "石料", "sand_gravel"),
    "ore": ("矿石", "矿粉", "铁矿", "ore"),
    "fertiliser_ash": ("肥料", "灰渣", "粉煤灰", "炉渣", "fertiliser_ash"),
    "coal": ("煤炭", "原煤", "燃煤", "煤", "coal"),
}
CARGO_LABELS: dict[Cargo, str] = {
    "construction_waste": "建筑垃圾",
    "muck": "渣土",
    "sand_gravel": "砂石",
    "ore": "矿石",
    "fertiliser_ash": "肥料灰渣",
    "coal": "煤炭",
}


def cargo_category(text: object) -> Cargo | None:
    """The category a cargo text names (the first that a word of it appears in), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    lowered = text.strip().lower()
    for category, words in _WORDS.items():
        if any(word in lowered for word in words):
            return category
    return None
