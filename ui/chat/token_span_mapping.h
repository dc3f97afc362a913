#pragma once
// Token spans of a message's raw text → character ranges of its rendered document. An answer is
// shown as Markdown, so raw positions and rendered positions differ (markup is dropped, soft line
// breaks become spaces). Each token's text is looked up in the rendered text in order, starting
// where the previous token ended: what is shown is found, markup-only tokens ("**", "```") are
// not, and nothing is ever matched twice.

#include <QString>
#include <QVector>

namespace dsv2::ui {

struct TextRange {
    int start = 0;
    int length = 0;  // 0: not shown in the rendered text
    bool operator==(const TextRange&) const = default;
};

// `spans` (UTF-16, in content order, non-overlapping) of `content`, found in `rendered`
// (QTextDocument::toPlainText(), whose positions are the document's cursor positions).
QVector<TextRange> mapSpansToRendered(const QString& content, const QVector<TextRange>& spans, const QString& rendered);

// The index of the range that holds rendered position `pos`; -1 if none.
int rangeAt(const QVector<TextRange>& ranges, int pos);

}  // namespace dsv2::ui
