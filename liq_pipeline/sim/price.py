"""The price process and the day's exogenous draws: stochastic volatility (AR(1) log-vol), Markov regimes
with their drift, Laplace jumps, one return a second; and the draws of the day's openers (arrivals follow the
minute's activity, sizes, leverage, sides, exits), made in bulk before the book is stepped."""

from __future__ import annotations

import numpy as np

from liq_pipeline.sim.config import MINUTES_PER_DAY, MS_PER_MINUTE, PREMIUM_SAMPLES_PER_MINUTE


class PriceProcess:
    """Part of `market.SymbolSim`: the bulk draws of one simulated day."""

    def _predraw_day(self) -> dict[str, np.ndarray]:
        """Every random draw of the day that does not depend on the book, in bulk."""
        cfg, rng = self.cfg, self.rng_price
        n = MINUTES_PER_DAY
        # AR(1) log-volatility, stationary sd = vol_of_vol, continuing from yesterday's last value.
        phi = np.exp(-cfg.vol_mean_reversion_per_day / n)
        eps = rng.standard_normal(n) * cfg.vol_of_vol * np.sqrt(1 - phi * phi)
        logv = _ar1(eps, phi, self.logv)
        self.logv = float(logv[-1])
        # exp(logv − vov²) has E[·²] = 1: the variance, hence the annual vol, is the configured one. The
        # hour-of-day profile (mean square 1) puts the US session's activity where it is in real data.
        profile = np.asarray(cfg.intraday_vol_profile, dtype=np.float64)
        profile = profile / np.sqrt(np.mean(profile ** 2))
        sig = self.sigma_min * np.exp(logv - cfg.vol_of_vol ** 2) * np.repeat(profile, 60)
        # Markov regime: switches at exponential times, new regime uniform over all regimes.
        switch = rng.random(n) < 1.0 / (cfg.regime_mean_hours * 60)
        draws = rng.integers(0, len(cfg.regime_long_probs), n)
        last_switch = np.maximum.accumulate(np.where(switch, np.arange(n), -1))
        regime = np.where(last_switch >= 0, draws[np.maximum(last_switch, 0)], self.regime)
        self.regime = int(regime[-1])
        drift = np.asarray(cfg.regime_drifts_per_day)[regime] / n - 0.5 * sig ** 2
        ret = rng.standard_normal((n, 60)) * (sig / np.sqrt(60))[:, None] + (drift / 60)[:, None]
        jumps = rng.random(n) < cfg.jumps_per_day / n
        ret[jumps, rng.integers(0, 60, int(jumps.sum()))] += rng.laplace(0.0, cfg.jump_scale, int(jumps.sum()))
        # Basis noise of the premium index: AR(1) per minute, stationary sd premium_noise, continuing.
        phi_p = 0.5 ** (1.0 / (cfg.premium_noise_half_life_hours * 60))
        eps_p = rng.standard_normal(n) * cfg.premium_noise * np.sqrt(1 - phi_p * phi_p)
        premium_ar = _ar1(eps_p, phi_p, self.premium_ar)
        self.premium_ar = float(premium_ar[-1])
        premium_z = rng.standard_normal((n, PREMIUM_SAMPLES_PER_MINUTE))
        rng = self.rng  # the openers' draws: the price path above does not depend on how many there are
        # Openers arrive faster when the market moves (activity ~ realised vol of the minute), measured
        # against its long-run mean, so a wild day opens more positions than a quiet one (as real volume
        # does: hourly volume/OI rises ~1.2x as fast as the hour's range). E[sig] = sigma_min·exp(−vov²/2)·
        # mean(profile) and E|ret| ≈ √(2/π)·sig: positions_per_day is the long-run mean.
        activity = sig / self.sigma_min + np.abs(ret.sum(axis=1)) / self.sigma_min
        mean_activity = (1 + np.sqrt(2 / np.pi)) * np.exp(-cfg.vol_of_vol ** 2 / 2) * profile.mean()
        rate = cfg.positions_per_day * (1 + cfg.scalpers_per_position) / n * activity / mean_activity
        opens = rng.poisson(rate)
        k = int(opens.sum())
        minute = np.repeat(np.arange(n), opens)
        offset = rng.integers(0, MS_PER_MINUTE, k)
        order = np.lexsort((offset, minute))
        lev_idx = rng.choice(len(cfg.leverages), size=k, p=np.asarray(cfg.leverage_weights))
        pareto = cfg.size_min_usd * rng.random(k) ** (-1.0 / cfg.size_tail_alpha)
        lo, hi = cfg.margin_add_range
        draws = {
            "cumret": np.cumsum(ret, axis=1), "sig": sig, "regime": regime, "opens": opens,
            "premium_z": premium_z, "premium_ar": premium_ar,
            "o_minute": minute, "o_offset": offset[order], "o_side_u": rng.random(k),
            "o_notional": np.minimum(pareto, cfg.size_max_usd),
            "o_lev": np.asarray(cfg.leverages, dtype=np.float64)[lev_idx],
            "o_taker_u": rng.random(k), "o_tp": np.exp(rng.normal(np.log(cfg.take_profit_margin_multiple),
                                                                  cfg.tp_sigma, k)),
            "o_sl_u": rng.random(k), "o_sl": rng.uniform(*cfg.stop_loss_margin_range, k),
            "o_hold_ms": (np.exp(rng.normal(np.log(cfg.median_hold_hours), cfg.hold_sigma, k)) * 3_600_000)
            .astype(np.int64) + MS_PER_MINUTE,
            "o_cross_u": rng.random(k),
            "o_balance": 1.0 + np.exp(rng.normal(np.log(cfg.balance_multiple_median), cfg.balance_multiple_sigma, k)),
            "o_add_u": rng.random(k), "o_add_frac": rng.uniform(lo, hi, k),
            "basis_u": rng.random((n, max(cfg.basis_traders, 1))), "mm_u": rng.random(n),
        }
        self._draw_scalpers(draws, k)
        return draws

    def _draw_scalpers(self, draws: dict[str, np.ndarray], k: int) -> None:
        """Mark a share scalpers_per_position / (1 + it) of the day's openers as scalpers and give them their own
        size, leverage and hold (drawn last, so the other draws do not depend on the scalpers' number)."""
        cfg, rng = self.cfg, self.rng
        scalp = rng.random(k) < cfg.scalpers_per_position / (1 + cfg.scalpers_per_position)
        j = int(scalp.sum())
        size = cfg.scalper_size_min_usd * rng.random(j) ** (-1.0 / cfg.scalper_size_tail_alpha)
        lev = np.asarray(cfg.scalper_leverages, dtype=np.float64)[
            rng.choice(len(cfg.scalper_leverages), size=j, p=np.asarray(cfg.scalper_leverage_weights))]
        hold = np.exp(rng.normal(np.log(cfg.scalper_median_hold_minutes), cfg.scalper_hold_sigma, j)) * MS_PER_MINUTE
        draws["o_scalp"] = scalp
        draws["o_notional"][scalp] = np.minimum(size, cfg.scalper_size_max_usd)
        draws["o_lev"][scalp] = lev
        draws["o_hold_ms"][scalp] = hold.astype(np.int64) + MS_PER_MINUTE


def _ar1(eps: np.ndarray, phi: float, previous: float) -> np.ndarray:
    """y[i] = eps[i] + phi·y[i−1], y[−1] = `previous`: the AR(1) filter, in the order of operations of
    scipy.signal.lfilter([1], [1, −phi], eps, zi=[phi·previous]) (bit for bit the same values) without the
    second of CPU that importing scipy.signal costs each simulator process. 1,440 steps a day."""
    out = np.empty(eps.size)
    y = phi * previous
    for i, x in enumerate(eps.tolist()):
        y = x + y
        out[i] = y
        y = phi * y
    return out
