"""The exact (Clopper-Pearson) binomial interval, for false-alarm and catch rates.

Plain Python (no scipy): the interval's ends are found by bisection on the binomial tail sums.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return sum(comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(k + 1))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval for a rate seen ``k`` times in ``n`` trials."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, not k={k}, n={n}.")
    alpha = (1.0 - level) / 2.0

    def solve(f: Callable[[float], float], target: float, increasing: bool) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            value = f(mid)
            if (value < target) == increasing:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2.0

    # lower end: P(X >= k | p) = alpha, which grows with p; upper end: P(X <= k | p) = alpha.
    low = 0.0 if k == 0 else solve(lambda p: 1.0 - binomial_cdf(k - 1, n, p), alpha, True)
    high = 1.0 if k == n else solve(lambda p: binomial_cdf(k, n, p), alpha, False)
    return low, high
