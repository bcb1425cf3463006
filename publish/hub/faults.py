"""TEST-ONLY fault injection: `TENSORFERRY_HUB_FAULTS="429:0.2,500:0.1,drop:0.05,lost:0.05,seed:1"` makes
the server answer that fraction of API and LFS requests with 429 (`Retry-After: 1`), 500, or close the
connection without an answer, before any work is done, so a retry is always safe — or, for `lost`,
do the work and then close the connection without an answer: the client cannot tell whether its
commit landed, and must find out before it retries. `/health`, file downloads (`/resolve/`) and the
web pages are never faulted. The draws come from one seeded generator in request order: the same
requests in the same order get the same faults.  `kind@text:rate` faults only the requests whose
path contains `text` (e.g. `lost@/commit/:1.0`: every commit lands and its answer is lost).
`delay:S` makes `lost` slower: the connection closes at once and the work is carried out S seconds
later (a commit still in flight when the client gave up on it: `lost@/commit/:1.0,delay:3`).

>>> f = parse_faults("429:0.5,seed:1")
>>> [f.draw("/api/models/a/b") for _ in range(4)], f.draw("/health")
(['429', None, None, '429'], None)
>>> g = parse_faults("lost@/commit/:1.0")
>>> g.draw("/api/models/a/b/commit/main"), g.draw("/api/models/a/b/preupload/main")
('lost', None)
>>> parse_faults("lost:0.5,delay:2.5").delay
2.5
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

ENV = "TENSORFERRY_HUB_FAULTS"
KINDS = ("429", "500", "drop", "lost")
FAULTED = re.compile(r"^/(?:api|lfs)/|\.git/info/lfs/")


@dataclass
class Faults:
    """Rates per fault kind (in KINDS order) and the generator that draws them."""

    rates: dict[str, float]
    seed: int = 0
    only: dict[str, str] = field(default_factory=dict)  # kind → text the path must contain
    delay: float = 0.0  # seconds between dropping a `lost` request's connection and carrying it out
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def draw(self, raw_path: str) -> str | None:
        """The fault for a request to `raw_path`, or None to serve it normally."""
        if not FAULTED.search(raw_path):
            return None
        u = self.rng.random()
        for kind in KINDS:
            rate = self.rates.get(kind, 0.0) if self.only.get(kind, "") in raw_path else 0.0
            if u < rate:
                return kind
            u -= rate
        return None

    def describe(self) -> str:
        late = f", carried out {self.delay:g} s after the drop" if self.delay and self.rates.get("lost") else ""
        return ", ".join(f"{k} {self.rates[k]:.0%}" for k in KINDS if self.rates.get(k)) + late + f" (seed {self.seed})"


def parse_faults(spec: str | None) -> Faults | None:
    """`"429:0.2,500:0.1,drop:0.05,seed:1"` → Faults; None or "" → None; ValueError naming ENV otherwise."""
    if not spec or not spec.strip():
        return None
    rates: dict[str, float] = {}
    only: dict[str, str] = {}
    seed, delay = 0, 0.0
    for item in spec.split(","):
        key, sep, value = item.strip().partition(":")
        key, at, where = key.partition("@")
        if at:
            only[key] = where
        try:
            if not sep:
                raise ValueError
            if key == "seed":
                seed = int(value)
                continue
            if key == "delay":
                delay = float(value)
                if not 0.0 <= delay <= 600.0:
                    raise ValueError
                continue
            if key not in KINDS:
                raise ValueError
            rate = float(value)
        except ValueError:
            raise ValueError(f"{ENV}: cannot read {item.strip()!r}; expected e.g. "
                             f"'429:0.2,500:0.1,drop:0.05,seed:1' (kinds: {', '.join(KINDS)})") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{ENV}: rate of {key} must be between 0 and 1, got {value}")
        rates[key] = rate
    if sum(rates.values()) > 1.0:
        raise ValueError(f"{ENV}: the rates add up to more than 1 ({sum(rates.values()):g})")
    return Faults(rates, seed, only, delay)
