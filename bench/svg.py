"""Minimal SVG charts for bench/report.py (no plotting library needed):
line charts (linear or log y) and grouped bar charts."""

import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#7f7f7f", "#ff7f0e"]
W, H = 720, 380
L, R, T, B = 80, 200, 40, 50  # margins; the legend sits in the right margin


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _ticks(lo, hi, log):
    if log:
        return [10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10((hi - lo) or 1))
    for m in (0.1, 0.2, 0.5, 1, 2, 5, 10):
        if (hi - lo) / (step * m) <= 8:
            step *= m
            break
    t, out = math.floor(lo / step) * step, []
    while t <= hi + step / 2:
        out.append(t)
        t += step
    return out


def _frame(title, xlabel, ylabel):
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="22" font-size="15" font-weight="bold">{_esc(title)}</text>',
        f'<text x="{L + (W - L - R) / 2}" y="{H - 10}" text-anchor="middle">{_esc(xlabel)}</text>',
        f'<text x="16" y="{T + (H - T - B) / 2}" transform="rotate(-90 16 {T + (H - T - B) / 2})" text-anchor="middle">{_esc(ylabel)}</text>',
    ]


def _legend(out, names):
    for i, n in enumerate(names):
        y = T + 10 + 18 * i
        out.append(f'<rect x="{W - R + 15}" y="{y - 9}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{W - R + 32}" y="{y + 1}">{_esc(n)}</text>')


def line_chart(path, title, xlabel, ylabel, series, logx=False, logy=False, xticks=None):
    """series: {name: [(x, y), ...]}"""
    pts = [p for s in series.values() for p in s if p[1] > 0 or not logy]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = (min(ys), max(ys)) if logy else (0, max(ys) * 1.1)
    tx = lambda v: math.log10(v) if logx else v
    ty = lambda v: math.log10(v) if logy else v
    if logy:
        y0, y1 = 10 ** math.floor(math.log10(y0)), 10 ** math.ceil(math.log10(y1))
    sx = lambda v: L + (tx(v) - tx(x0)) / ((tx(x1) - tx(x0)) or 1) * (W - L - R)
    sy = lambda v: H - B - (ty(v) - ty(y0)) / ((ty(y1) - ty(y0)) or 1) * (H - T - B)
    out = _frame(title, xlabel, ylabel)
    for t in _ticks(y0, y1, logy):
        if y0 <= t <= y1:
            out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xticks or _ticks(x0, x1, logx):
        if x0 <= t <= x1:
            out.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
            out.append(f'<text x="{sx(t):.1f}" y="{H - B + 16}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#333"/>')
    for i, (name, s) in enumerate(series.items()):
        s = [p for p in s if p[1] > 0 or not logy]
        c = COLORS[i % len(COLORS)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="' +
                   " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s) + '"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{c}"/>' for x, y in s]
    _legend(out, list(series))
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def bar_chart(path, title, ylabel, groups, names, values, lines=None):
    """values[name][group] -> number; lines: {group: (label, y)} drawn as a dashed mark."""
    vmax = max([v for n in names for v in values[n].values()] + [y for _, y in (lines or {}).values()]) * 1.15
    sy = lambda v: H - B - v / vmax * (H - T - B)
    out = _frame(title, "", ylabel)
    for t in _ticks(0, vmax, False):
        if t <= vmax:
            out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    gw = (W - L - R) / len(groups)
    bw = gw * 0.8 / len(names)
    for gi, g in enumerate(groups):
        gx = L + gi * gw + gw * 0.1
        for ni, n in enumerate(names):
            v = values[n].get(g)
            if v is None:
                continue
            x = gx + ni * bw
            out.append(f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bw - 2:.1f}" height="{H - B - sy(v):.1f}" fill="{COLORS[ni % len(COLORS)]}"/>')
            # Inside the bar's top when it is tall enough, so a limit mark above stays readable.
            inside = H - B - sy(v) > 20
            out.append(f'<text x="{x + bw / 2 - 1:.1f}" y="{sy(v) + (14 if inside else -4):.1f}" text-anchor="middle" '
                       f'font-size="10" fill="{"white" if inside else "black"}">{_fmt(round(v, 1))}</text>')
        if lines and g in lines:
            label, y = lines[g]
            out.append(f'<line x1="{gx:.1f}" x2="{gx + gw * 0.8:.1f}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="black" stroke-dasharray="5,3"/>')
            out.append(f'<text x="{gx + gw * 0.4:.1f}" y="{sy(y) - 4:.1f}" text-anchor="middle" font-size="10">{_esc(label)}</text>')
        out.append(f'<text x="{gx + gw * 0.4:.1f}" y="{H - B + 16}" text-anchor="middle">{_esc(g)}</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#333"/>')
    _legend(out, names)
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")
