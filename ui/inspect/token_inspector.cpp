#include "token_inspector.h"

#include <QLabel>
#include <QPainter>
#include <QVBoxLayout>

#include <cmath>
#include <limits>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {

// The top-N alternatives as horizontal bars, the chosen token marked.
class AlternativesChart : public QWidget {
public:
    explicit AlternativesChart(QWidget* parent) : QWidget(parent) {
        setAccessibleName(tr("Alternatives"));
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    }

    void setRows(std::vector<inspect::Alternative> alternatives, int chosenId, std::optional<float> chosenLogprob) {
        m_alternatives = std::move(alternatives);
        m_chosenId = chosenId;
        m_chosenLogprob = chosenLogprob;
        updateGeometry();
        update();
    }

    QSize sizeHint() const override { return {240, rowCount() * rowHeight() + 4}; }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        const QPalette& pal = palette();
        const QFontMetrics fm(font());
        const int labelWidth = std::min(width() / 3, fm.averageCharWidth() * 14);
        const int valueWidth = fm.horizontalAdvance(QStringLiteral("100.0 % "));
        const int barWidth = std::max(10, width() - labelWidth - valueWidth - 12);
        int y = 2;
        const auto drawRow = [&](const QString& label, double prob, bool chosen) {
            const QRect labelRect(0, y, labelWidth, rowHeight());
            QFont f = font();
            f.setBold(chosen);
            p.setFont(f);
            p.setPen(pal.color(QPalette::Text));
            p.drawText(labelRect, Qt::AlignVCenter | Qt::AlignRight,
                       QFontMetrics(f).elidedText(label, Qt::ElideRight, labelWidth));
            const QRect track(labelWidth + 6, y + 3, barWidth, rowHeight() - 6);
            p.fillRect(track, mixColors(pal.color(QPalette::Base), pal.color(QPalette::Text), 0.06));
            const QColor fill = chosen ? pal.color(QPalette::Highlight)
                                       : mixColors(pal.color(QPalette::Highlight), pal.color(QPalette::Base), 0.55);
            p.fillRect(QRect(track.left(), track.top(), std::max(1, static_cast<int>(prob * track.width() + 0.5)),
                             track.height()),
                       fill);
            p.drawText(QRect(track.right() + 6, y, valueWidth, rowHeight()), Qt::AlignVCenter | Qt::AlignLeft,
                       formatProbability(prob));
            y += rowHeight();
        };
        bool chosenShown = false;
        for (const inspect::Alternative& a : m_alternatives) {
            const bool chosen = a.tokenId == m_chosenId;
            chosenShown = chosenShown || chosen;
            drawRow(visibleTokenText(a.text, a.tokenId), std::exp(static_cast<double>(a.logprob)), chosen);
        }
        if (!chosenShown && m_chosenLogprob) {
            drawRow(tr("chosen"), std::exp(static_cast<double>(*m_chosenLogprob)), true);
        }
    }

private:
    int rowHeight() const { return QFontMetrics(font()).height() + 6; }
    int rowCount() const {
        bool chosenShown = false;
        for (const auto& a : m_alternatives) chosenShown = chosenShown || a.tokenId == m_chosenId;
        return static_cast<int>(m_alternatives.size()) + (!chosenShown && m_chosenLogprob ? 1 : 0);
    }

    std::vector<inspect::Alternative> m_alternatives;
    int m_chosenId = -1;
    std::optional<float> m_chosenLogprob;
};

TokenInspector::TokenInspector(InspectionModel* model, QWidget* parent) : QWidget(parent), m_model(model) {
    setAccessibleName(tr("Token inspector"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);
    m_headline = new QLabel(this);
    QFont big = m_headline->font();
    big.setPointSizeF(big.pointSizeF() * 1.3);
    big.setBold(true);
    m_headline->setFont(big);
    m_headline->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_details = new QLabel(this);
    m_details->setWordWrap(true);
    m_details->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_chart = new AlternativesChart(this);
    layout->addWidget(m_headline);
    layout->addWidget(m_details);
    layout->addWidget(m_chart);
    layout->addStretch(1);
    connect(m_model, &InspectionModel::selectedTokenChanged, this, &TokenInspector::showRow);
    connect(m_model, &InspectionModel::tableReset, this, [this] { showRow(m_model->selectedToken()); });
    showRow(-1);
}

void TokenInspector::showRow(int row) {
    m_row = row;
    const inspect::RoutingTable& t = m_model->table();
    if (row < 0 || row >= t.tokenCount()) {
        m_headline->setText(tr("No token selected"));
        m_details->setText(tr("Click a token in the text or a row of the heatmap."));
        m_chart->setRows({}, -1, std::nullopt);
        m_chart->setAccessibleDescription({});
        return;
    }
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(row)];
    m_headline->setText(tr("“%1”").arg(visibleTokenText(r)));
    QStringList parts;
    parts << tr("%1 token %2 · id %3").arg(r.isPrompt ? tr("Prompt") : tr("Answer")).arg(row).arg(r.tokenId);
    if (r.logprob) {
        const double p = std::exp(static_cast<double>(*r.logprob));
        int rank = 0;
        for (std::size_t i = 0; i < r.alternatives.size(); ++i) {
            if (r.alternatives[i].tokenId == r.tokenId) rank = static_cast<int>(i) + 1;
        }
        parts << tr("probability %1 (log %2)").arg(formatProbability(p)).arg(*r.logprob, 0, 'f', 3);
        if (!r.alternatives.empty()) {
            parts << (rank > 0 ? tr("rank %1 of the top %2").arg(rank).arg(r.alternatives.size())
                               : tr("not among the top %1 (sampled from the tail)").arg(r.alternatives.size()));
            parts << tr("entropy ≥ %1 nats (from the top %2 and the rest as one)")
                         .arg(entropy(), 0, 'f', 2)
                         .arg(r.alternatives.size());
        }
    } else if (r.isPrompt) {
        parts << tr("given in the prompt: no probabilities");
    } else {
        parts << tr("no probabilities stored");
    }
    m_details->setText(parts.join(QStringLiteral("\n")));
    m_chart->setRows(r.alternatives, r.tokenId, r.logprob);
    QStringList alts;
    for (const auto& a : r.alternatives)
        alts << QStringLiteral("%1 %2").arg(visibleTokenText(a.text, a.tokenId),
                                            formatProbability(std::exp(double(a.logprob))));
    m_chart->setAccessibleDescription(alts.join(QStringLiteral(", ")));
}

QString TokenInspector::headline() const { return m_headline->text(); }

QString TokenInspector::details() const { return m_details->text(); }

double TokenInspector::probability() const {
    const inspect::RoutingTable& t = m_model->table();
    if (m_row < 0 || m_row >= t.tokenCount()) return std::numeric_limits<double>::quiet_NaN();
    const auto& lp = t.rows[static_cast<std::size_t>(m_row)].logprob;
    return lp ? std::exp(static_cast<double>(*lp)) : std::numeric_limits<double>::quiet_NaN();
}

double TokenInspector::entropy() const {
    const inspect::RoutingTable& t = m_model->table();
    if (m_row < 0 || m_row >= t.tokenCount()) return std::numeric_limits<double>::quiet_NaN();
    const inspect::TokenRow& r = t.rows[static_cast<std::size_t>(m_row)];
    if (r.alternatives.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::vector<float> lps;
    for (const auto& a : r.alternatives) lps.push_back(a.logprob);
    return inspect::entropyLowerBound(lps);
}

int TokenInspector::alternativeCount() const {
    const inspect::RoutingTable& t = m_model->table();
    if (m_row < 0 || m_row >= t.tokenCount()) return 0;
    return static_cast<int>(t.rows[static_cast<std::size_t>(m_row)].alternatives.size());
}

}  // namespace dsv2::ui
