#pragma once
// TokenTextView: the message's text, token by token, coloured the way the inspection needs:
//   Plain           the text as written;
//   Confidence      background by the chosen token's probability (unlikely picks stand out);
//   ExpertAtLayer   background = the token's top-1 expert in one MoE layer (the Mixtral paper's
//                   figure: which expert each token went to);
//   SelectedExpert  only the tokens routed to the selected expert, in its colour (default).
// Prompt tokens (when the table has them) come first, greyed. Click a token: selects it (the
// heatmap scrolls to its row); the selected token is drawn in the selection colours.
//
// The same spans, in UTF-16 positions of the answer text, come from
// InspectionModel::answerTextSpans() for a view that shows the answer elsewhere (the chat).

#include <QTextEdit>
#include <QVector>

#include "frame_throttle.h"
#include "inspection_model.h"

namespace dsv2::ui {

class TokenTextView : public QTextEdit {
    Q_OBJECT
public:
    enum class Coloring { Plain, Confidence, ExpertAtLayer, SelectedExpert };
    Q_ENUM(Coloring)

    explicit TokenTextView(InspectionModel* model, QWidget* parent = nullptr);

    Coloring coloring() const { return m_coloring; }
    void setColoring(Coloring coloring);
    int colorLayer() const { return m_colorLayer; }
    void setColorLayer(int moeLayer);  // for ExpertAtLayer

    // Rows → document positions [start, end); -1 when the row shows no text.
    int tokenStart(int row) const;
    int tokenEnd(int row) const;
    int tokenAtPosition(int documentPosition) const;
    int tokenAt(const QPoint& viewportPos) const;
    QPoint tokenCenter(int row) const;  // viewport coordinates, for tests
    // The background a token is drawn with (invalid: none).
    QColor tokenBackground(int row) const;
    QVector<int> highlightedTokens() const;  // rows with a background
    QString tokenToolTip(int row) const;

Q_SIGNALS:
    void tokenHovered(int row);

protected:
    void mousePressEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    bool viewportEvent(QEvent* event) override;
    void changeEvent(QEvent* event) override;

private:
    void rebuild();
    void appendRows(int first, int count);
    void appendPending();
    void appendContentTail();
    QColor backgroundFor(int row) const;
    void recolor(bool force = false);
    void applyFormat(int row, bool force = false);
    void showSelectedToken();

    InspectionModel* m_model = nullptr;
    Coloring m_coloring = Coloring::SelectedExpert;
    int m_colorLayer = 0;
    std::vector<int> m_start;  // per row
    std::vector<int> m_end;
    std::vector<std::pair<int, int>> m_starts;
    std::vector<QColor>
        m_shownBackground;         // per row: what the document has now  // (start, row) of rows with text, ascending
    std::size_t m_shownBytes = 0;  // of the answer content already in the document
    bool m_separatorShown = false;
    QPoint m_pressPos;
    FrameThrottle m_frame;  // streamed rows are added once per frame
};

}  // namespace dsv2::ui
