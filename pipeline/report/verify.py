"""How the check of cached features against the live teacher reads: summary lines and the report's table."""
from __future__ import annotations

ENVIRONMENT_KEYS = ("torch", "torchvision", "decoder", "device")


def environment_line(env: dict | None) -> str:
    """The libraries, decoder and device that computed features, in one line."""
    if not env:
        return "not recorded"
    return ", ".join(f"{key} {env[key]}" if key in ("torch", "torchvision") else str(env[key])
                     for key in ENVIRONMENT_KEYS if key in env)


def environment_changes(cached: dict | None, live: dict) -> dict[str, list]:
    """Entries of the environment that differ between the cache's and this machine's: key -> [cached, live]."""
    cached = cached or {}
    return {key: [cached.get(key), value] for key, value in live.items() if cached.get(key) != value}


def verify_summary(check: dict) -> str:
    """Lines a user reads after `rdistill verify`: the agreement, the worst items, both environments."""
    verdict = "holds" if check["passed"] else "DOES NOT HOLD"
    lines = [f"verify {check['teacher']}: {check['items']} cached items ({check['views']} augmented views) recomputed: "
             f"cosine min {check['min_cosine']:.6f}, mean {check['mean_cosine']:.6f}; max |diff| "
             f"{check['max_abs_diff']:.2e}; the cache {verdict} (verify.min_cosine {check['min_cosine_allowed']})"]
    lines += [f"  lowest: {w['item']}: cosine {w['cosine']:.6f}" for w in check["worst"]]
    lines += [f"  computed with: {environment_line(check['cached_environment'])}",
              f"  checked with:  {environment_line(check['live_environment'])}"]
    lines += [f"  provenance differs: {key} {pair['cached']!r} in the cache, {pair['here']!r} here"
              for key, pair in check["provenance_differs"].items()]
    return "\n".join(lines)


def verify_table(checks: dict[str, dict]) -> str:
    """Markdown table: per teacher, how its cached features agree with its live features on this machine."""
    lines = ["| teacher | items | min cosine | mean cosine | max abs diff | computed with | checked with |",
             "|---|---|---|---|---|---|---|"]
    for name, check in sorted(checks.items()):
        if "imported" in check:
            lines.append(f"| {name} | imported from {check['imported']}: not recomputed | – | – | – | "
                         f"{environment_line(check['cached_environment'])} | – |")
            continue
        lines.append(f"| {name} | {check['items']} | {check['min_cosine']:.6f} | {check['mean_cosine']:.6f} | "
                     f"{check['max_abs_diff']:.1e} | {environment_line(check['cached_environment'])} | "
                     f"{environment_line(check['live_environment'])} |")
    return "\n".join(lines) + "\n"
