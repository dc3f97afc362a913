#include "chat/token_span_mapping.h"

namespace dsv2::ui {
namespace {
// How far past the previous token a token's text may be found. Markdown drops a few characters
// between tokens (markup, the spaces of a table); a longer jump means the text is not shown here
// (inside a code block's fence line, say) and a match further on would be a later occurrence.
constexpr int kMaxSkip = 64;
}  // namespace

QVector<TextRange> mapSpansToRendered(const QString& content, const QVector<TextRange>& spans,
                                      const QString& rendered) {
    QVector<TextRange> out;
    out.reserve(spans.size());
    int cursor = 0;
    for (const TextRange& span : spans) {
        const QString text = content.mid(span.start, span.length).trimmed();
        if (text.isEmpty()) {
            out.append({cursor, 0});
            continue;
        }
        const int found = rendered.indexOf(text, cursor);
        if (found < 0 || found - cursor > kMaxSkip) {
            out.append({cursor, 0});
            continue;
        }
        out.append({found, static_cast<int>(text.size())});
        cursor = found + static_cast<int>(text.size());
    }
    return out;
}

int rangeAt(const QVector<TextRange>& ranges, int pos) {
    for (int i = 0; i < ranges.size(); ++i) {
        const TextRange& r = ranges[i];
        if (r.length > 0 && pos >= r.start && pos < r.start + r.length) return i;
    }
    return -1;
}

}  // namespace dsv2::ui
