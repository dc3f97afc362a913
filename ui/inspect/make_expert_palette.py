#!/usr/bin/env python3
"""Generates the expert palette of inspect_colors.cpp (kExpertPalette): 160 colours, each chosen
greedily to be as far as possible (Euclidean distance in OKLab) from all the colours before it
(a Glasbey palette), among the sRGB colours with OKLab lightness 0.50-0.82 (readable on light and
dark backgrounds). Because every prefix is spread out too, the 64 experts of DeepSeek-V2-Lite get
the first 64 colours and are even further apart than the 160 of DeepSeek-V2.

    python3 ui/inspect/make_expert_palette.py > /tmp/palette.txt   # paste into inspect_colors.cpp
"""
import math
import sys


def to_srgb(x):
    return 12.92 * x if x <= 0.0031308 else 1.055 * x ** (1 / 2.4) - 0.055


def from_srgb(c):
    c /= 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def oklch_to_linear(lightness, chroma, hue):
    a = chroma * math.cos(math.radians(hue))
    b = chroma * math.sin(math.radians(hue))
    l_ = lightness + 0.3963377774 * a + 0.2158037573 * b
    m_ = lightness - 0.1055613458 * a - 0.0638541728 * b
    s_ = lightness - 0.0894841775 * a - 1.2914855480 * b
    l, m, s = l_ ** 3, m_ ** 3, s_ ** 3
    return (4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
            -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
            -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s)


def to_rgb8(linear):
    return tuple(round(min(1, max(0, to_srgb(min(1, max(0, x))))) * 255) for x in linear)


def oklab(rgb):
    r, g, b = (from_srgb(x) for x in rgb)
    l = (0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b) ** (1 / 3)
    m = (0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b) ** (1 / 3)
    s = (0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b) ** (1 / 3)
    return (0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
            1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
            0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s)


def candidates():
    out = set()
    for li in range(17):  # L 0.50 .. 0.82
        for ci in range(15):  # C 0.05 .. 0.26
            for hue in range(0, 360, 4):
                lin = oklch_to_linear(0.50 + 0.02 * li, 0.05 + 0.015 * ci, hue)
                if all(-1e-4 <= x <= 1.0001 for x in lin):
                    out.add(to_rgb8(lin))
    return sorted(out)


def main(count=160):
    cands = candidates()
    labs = [oklab(c) for c in cands]
    first = to_rgb8(oklch_to_linear(0.70, 0.16, 55))  # expert 0: a warm orange
    chosen = [first]
    nearest = [math.dist(lab, oklab(first)) for lab in labs]
    gaps = []
    while len(chosen) < count:
        i = max(range(len(cands)), key=nearest.__getitem__)
        gaps.append(nearest[i])
        chosen.append(cands[i])
        nearest = [min(d, math.dist(lab, labs[i])) for d, lab in zip(nearest, labs)]
    print(f"// smallest OKLab distance: {min(gaps[:63]):.4f} among the first 64, {min(gaps):.4f} among all {count}",
          file=sys.stderr)
    for row in range(0, count, 8):
        print("    " + ", ".join("0xff%02x%02x%02x" % c for c in chosen[row:row + 8]) + ",")


if __name__ == "__main__":
    main()
