#pragma once
// The colours of the inspection views. One function per meaning, so the same expert, weight or
// confidence looks the same in every view and in exported files.
//
// Experts (up to 160, DeepSeek-V2's count; more wrap around): a fixed table of 160 colours in
// which each colour was chosen to be as far as possible, in OKLab (a perceptual colour space), from
// all the colours before it (a Glasbey palette; make_expert_palette.py regenerates it). So the 64
// experts of DeepSeek-V2-Lite use the first 64, which are even further apart than the full 160.
// Lightness stays between 0.50 and 0.82: readable on light and on dark backgrounds. Expert e has
// the same colour in every view, every layer and every exported file.

#include <QColor>

class QPalette;

namespace dsv2::ui {

inline constexpr int kExpertPaletteSize = 160;

QColor expertColor(int expert);
// Gate weight on a perceptually uniform, colour-blind-safe ramp (viridis); t in [0, 1].
QColor weightColor(double t);
// Load relative to the layer's mean, diverging around "even" (ratio 1): blue below, orange-red
// above, on a log2 scale clamped to [1/4, 4]. Zero load (an unused expert) is its own colour.
QColor loadRatioColor(double ratio, const QPalette& palette);
// Background for a token of probability p in the colour-by-confidence mode: strong warm colour for
// unlikely picks fading to nothing at p = 1 (so a confident answer reads as plain text).
QColor confidenceColor(double p, const QPalette& palette);
// Black or white, whichever reads better on `background`.
QColor textColorOn(const QColor& background);
QColor mixColors(const QColor& a, const QColor& b, double t);  // t = 0: a, 1: b
bool isDarkPalette(const QPalette& palette);

}  // namespace dsv2::ui
