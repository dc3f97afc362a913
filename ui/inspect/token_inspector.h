#pragma once
// TokenInspector: the selected token up close — its text, id, probability and rank among the
// alternatives the sampler saw, the top-N alternatives as bars, and the entropy of the next-token
// distribution as far as the stored top-N allow (a lower bound, see load_stats.h). Follows the
// model's selected token; prompt tokens have no probabilities (they were given, not sampled).

#include <QWidget>

#include "inspection_model.h"

class QLabel;

namespace dsv2::ui {

class AlternativesChart;

class TokenInspector : public QWidget {
    Q_OBJECT
public:
    explicit TokenInspector(InspectionModel* model, QWidget* parent = nullptr);

    int shownRow() const { return m_row; }
    // What the labels say now (for tests and accessibility).
    QString headline() const;
    QString details() const;
    // Probability of the chosen token and the entropy bound shown; NaN when none.
    double probability() const;
    double entropy() const;
    int alternativeCount() const;

private:
    void showRow(int row);

    InspectionModel* m_model = nullptr;
    int m_row = -1;
    QLabel* m_headline = nullptr;
    QLabel* m_details = nullptr;
    AlternativesChart* m_chart = nullptr;
};

}  // namespace dsv2::ui
