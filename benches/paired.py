"""Round-by-round comparison for load.sh and sni.sh (imported by their summaries).

Each round runs every load on every program in turn, so two programs' figures of one
round were measured seconds apart. A median of each program's rounds hides how often one
came out ahead of the other; this prints it, with the median of the per-round ratios.
"""

import statistics


def compare(rounds, modes, a, b, metrics):
    """Prints, for each load in `modes`, in how many rounds `a` did at least as well as
    `b`, and the median of the per-round ratios a/b.

    `rounds` maps (mode, round) to {program: figures}; `metrics(mode)` lists the figures
    to compare as (index into the figures, label, True when lower is better).
    """
    print(f"\nPer round, {a} against {b} (rounds where {a} did at least as well; median of "
          f"the per-round ratios {a}/{b}):\n")
    for m in modes:
        pairs = [v for (mode, _), v in sorted(rounds.items()) if mode == m and a in v and b in v]
        if not pairs:
            continue
        for i, label, lower in metrics(m):
            ratios = [v[a][i] / v[b][i] for v in pairs if v[b][i] > 0]
            if not ratios:
                continue
            good = sum(v[a][i] <= v[b][i] if lower else v[a][i] >= v[b][i] for v in pairs)
            print(f"- {m}, {label}: {good} of {len(pairs)} rounds, "
                  f"median ratio {statistics.median(ratios):.2f}×")
