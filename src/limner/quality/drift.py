"""Drift alerts: when a window of a model's outputs scores worse than the model's first window."""

from __future__ import annotations

from dataclasses import dataclass

from limner.catalog.options import QualityOptions


@dataclass(frozen=True)
class Window:
    samples: int
    clip_mean: float | None
    fid: float | None


def judge(options: QualityOptions, window: Window, baseline: Window | None) -> str | None:
    """An alert message, or None when the window is fine.

    The baseline is the model's first window (its quality when monitoring began): a mean CLIP
    score ``clip_drop_alert`` (a fraction) below it, or an FID over ``fid_alert``, or FID more
    than 1.5 times the baseline's, raises an alert.
    """
    reasons: list[str] = []
    if window.clip_mean is not None and baseline is not None and baseline.clip_mean:
        floor = baseline.clip_mean * (1 - options.clip_drop_alert)
        if window.clip_mean < floor:
            reasons.append(
                f"mean CLIP score {window.clip_mean:.2f} fell below {floor:.2f} "
                f"({options.clip_drop_alert:.0%} under the first window's {baseline.clip_mean:.2f})"
            )
    if window.fid is not None:
        if options.fid_alert is not None and window.fid > options.fid_alert:
            reasons.append(f"FID {window.fid:.2f} is over the alert level {options.fid_alert:.2f}")
        elif baseline is not None and baseline.fid and window.fid > 1.5 * baseline.fid:
            reasons.append(f"FID {window.fid:.2f} is over 1.5x the first window's {baseline.fid:.2f}")
    return "; ".join(reasons) or None
