"""Published reference numbers (docs/protocol.md), each with its source: the only numbers in this
suite that are typed in rather than computed from the results store. Values in %, mean +- 95% CI."""

from __future__ import annotations

from dataclasses import dataclass

FINN_2017 = "Finn et al. 2017, Table 1"
LEE_2019 = "Lee et al. 2019, Table 3"
RAGHU_2020 = "Raghu et al. 2020, Table 2"
CHEN_2019 = "Chen et al. 2019, A Closer Look; exact table to be pinned"
PROTONET_VIA_LEE = "Snell et al. 2017 (ProtoNet), as cited by Lee et al. 2019"
AMFS_PAPER = "arXiv 2411.00404, claimed, as its summary reports"


@dataclass(frozen=True)
class Published:
    """One published result. `mean` is None where the source gives no exact number (`text` says
    what it gives); `claimed` marks the paper's own claims under test."""

    method: str
    dataset: str
    setting: str
    mean: float | None
    ci95: float | None
    source: str
    text: str | None = None
    claimed: bool = False
    decimals: int = 2  # as printed by the source

    def value(self) -> str:
        """The number as the source prints it: '98.7 ± 0.4', '99.38', or the source's words."""
        if self.mean is None:
            return str(self.text)
        mean = f"{self.mean:.{self.decimals}f}"
        return mean if self.ci95 is None else f"{mean} ± {self.ci95:.{self.decimals}f}"

    def display(self) -> str:
        return f"{self.value()} ({self.source})"


PUBLISHED: tuple[Published, ...] = (
    Published("maml", "omniglot", "5w1s", 98.7, 0.4, FINN_2017, decimals=1),
    Published("maml", "omniglot", "5w5s", 99.9, 0.1, FINN_2017, decimals=1),
    Published("maml", "omniglot", "20w1s", 95.8, 0.3, FINN_2017, decimals=1),
    Published("maml", "omniglot", "20w5s", 98.9, 0.2, FINN_2017, decimals=1),
    Published("maml", "mini-imagenet", "5w1s", 48.70, 1.84, FINN_2017),
    Published("maml", "mini-imagenet", "5w5s", 63.11, 0.92, FINN_2017),
    Published("fomaml", "mini-imagenet", "5w1s", 48.07, 1.75, FINN_2017),
    Published("fomaml", "mini-imagenet", "5w5s", 63.15, 0.91, FINN_2017),
    Published("MetaOptNet-RR", "mini-imagenet", "5w1s", 53.23, 0.59, LEE_2019),
    Published("MetaOptNet-RR", "mini-imagenet", "5w5s", 69.51, 0.48, LEE_2019),
    Published("ANIL", "omniglot", "20w1s", 96.2, 0.5, RAGHU_2020, decimals=1),
    Published("ANIL", "omniglot", "20w5s", 98.0, 0.3, RAGHU_2020, decimals=1),
    Published("ANIL", "mini-imagenet", "5w1s", 46.7, 0.4, RAGHU_2020, decimals=1),
    Published("ANIL", "mini-imagenet", "5w5s", 61.5, 0.5, RAGHU_2020, decimals=1),
    Published("amfs", "mini-imagenet", "5w1s", 99.38, None, AMFS_PAPER, claimed=True),
    Published("maml", "mini-imagenet", "5w1s", 99.12, None, AMFS_PAPER, claimed=True),
    Published("maml", "cub", "5w1s", None, None, CHEN_2019, text="about 55"),
    Published("maml", "cub", "5w5s", None, None, CHEN_2019, text="about 72-76"),
    Published("ProtoNet", "fc100", "5w1s", 35.3, 0.6, PROTONET_VIA_LEE, decimals=1),
    Published("ProtoNet", "fc100", "5w5s", 48.6, 0.6, PROTONET_VIA_LEE, decimals=1),
)


def published_for(method: str, dataset: str, setting: str, claimed: bool | None = None) -> list[Published]:
    """Published results of a method in a dataset setting (optionally only claims or only references)."""
    return [
        p
        for p in PUBLISHED
        if p.method == method and p.dataset == dataset and p.setting == setting and claimed in (None, p.claimed)
    ]


def references_in(dataset: str, setting: str) -> list[Published]:
    return [p for p in PUBLISHED if p.dataset == dataset and p.setting == setting]


def reference(method: str, dataset: str, setting: str) -> Published | None:
    """The one non-claimed published result with an exact number, if any."""
    found = [p for p in published_for(method, dataset, setting, claimed=False) if p.mean is not None]
    return found[0] if found else None


def claimed(method: str, dataset: str, setting: str) -> Published:
    found = published_for(method, dataset, setting, claimed=True)
    if len(found) != 1:
        raise KeyError(f"no single claimed value for {method} {dataset} {setting}")
    return found[0]
