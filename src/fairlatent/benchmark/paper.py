"""What the paper reports, to print beside our numbers (REFERENCE.md §1).

Ramaswamy, Kim & Russakovsky (CVPR 2021) evaluate 26 CelebA targets with gender (``Male``) as the
protected attribute and group them into three categories; the project page gives each category's averages
for the baseline and for latent de-biasing ("ours"). The category membership below is the paper's
(its Table 1 / project page grouping; REFERENCE.md lists the 26 targets and the averages, not the grouping).
"""

from __future__ import annotations

PAPER_TARGETS: tuple[str, ...] = (
    "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair",
    "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Eyeglasses", "Gray_Hair", "High_Cheekbones", "Mouth_Slightly_Open",
    "Narrow_Eyes", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Young",
)

CATEGORY: dict[str, str] = {
    **dict.fromkeys(("Big_Lips", "Big_Nose", "Oval_Face", "Pale_Skin", "Straight_Hair", "Wavy_Hair"),
                    "inconsistently labeled"),
    **dict.fromkeys(("Arched_Eyebrows", "Attractive", "Bushy_Eyebrows", "Pointy_Nose", "Receding_Hairline", "Young"),
                    "gender-dependent"),
    **dict.fromkeys(("Bags_Under_Eyes", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Chubby", "Eyeglasses",
                     "Gray_Hair", "High_Cheekbones", "Mouth_Slightly_Open", "Narrow_Eyes", "Smiling",
                     "Wearing_Earrings", "Wearing_Hat"), "gender-independent"),
}

# category → metric → (baseline, latent de-biasing); AP, DEO, BA in percent, KL raw (REFERENCE.md §1)
PAPER_AVERAGES: dict[str, dict[str, tuple[float, float]]] = {
    "inconsistently labeled": {"AP": (66.3, 65.2), "DEO": (21.5, 16.5), "BA": (2.1, 0.5), "KL": (1.7, 1.3)},
    "gender-dependent": {"AP": (78.6, 77.8), "DEO": (25.7, 23.4), "BA": (2.3, 1.6), "KL": (1.3, 1.2)},
    "gender-independent": {"AP": (83.9, 83.0), "DEO": (16.7, 13.9), "BA": (0.3, 0.0), "KL": (1.1, 0.9)},
}


def paper_overall() -> dict[str, tuple[float, float]]:
    """The paper's averages over all 26 targets: category averages weighted by category size."""
    sizes = {c: sum(1 for v in CATEGORY.values() if v == c) for c in PAPER_AVERAGES}
    total = sum(sizes.values())
    return {m: tuple(round(sum(PAPER_AVERAGES[c][m][i] * sizes[c] for c in sizes) / total, 2) for i in (0, 1))
            for m in ("AP", "DEO", "BA", "KL")}
