#pragma once
// How a token's text is shown on its own (labels, tooltips, the inspector): whitespace made
// visible, so " the" and "the" and "\n" can be told apart. And the numbers next to it.

#include <QString>

#include <string>

namespace dsv2::inspect {
struct TokenRow;
}

namespace dsv2::ui {

// "␣the", "↵", "⇥x"; a token with no text shows as "⟨id 123⟩".
QString visibleTokenText(const std::string& text, int tokenId);
QString visibleTokenText(const inspect::TokenRow& row);
// HTML-escaped visibleTokenText, for rich-text tooltips.
QString visibleTokenHtml(const inspect::TokenRow& row);
QString formatProbability(double p);   // "71.3 %", "0.04 %", "< 0.01 %"
QString formatByteSize(qint64 bytes);  // "512 B", "30.4 KiB", "270 KiB", "1.25 GiB"
QString formatTokenCount(qint64 n);    // "1 token", "1,234 tokens"
QString formatRoutes(double n);        // "1 token", "42 tokens" (loads counted in tokens)

}  // namespace dsv2::ui
