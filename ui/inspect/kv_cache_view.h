#pragma once
// KvCacheView: the session's latent KV cache at a glance.
//   - context fill: tokens of capacity, and what happens at the limit;
//   - blocks of 64 tokens used and free, bytes used / reserved / capacity, and the same per layer;
//   - the comparison plot: bytes per token and for this context as MLA (what we cache), GQA-8 and
//     plain MHA for the loaded model's shape, all in bf16 (formulas in kv_figures.h and in the
//     plot's tooltip). For DeepSeek-V2-Lite: 30.4 KiB vs 270 KiB per token, ×8.9.
// Fed with plain structs: setModelShape (from the model folder's config.json) and setCacheState
// (a copy of the engine's CacheUsage from every TokenEvent / PromptProcessed / Finished event).

#include <QWidget>

#include "kv_figures.h"
#include "plot_export.h"

namespace dsv2::ui {

class KvCacheView : public QWidget, public PlotRenderer {
    Q_OBJECT
public:
    explicit KvCacheView(QWidget* parent = nullptr);

    const ModelShape& modelShape() const { return m_shape; }
    void setModelShape(const ModelShape& shape);
    const CacheState& cacheState() const { return m_state; }
    void setCacheState(const CacheState& state);
    void clearCacheState();

    // The sentences the view shows (tests read them; screen readers get them as the description).
    QString fillText() const;
    QString blocksText() const;
    QString bytesText() const;
    QString perLayerText() const;
    QString limitText() const;
    QString comparisonText() const;     // "MLA 30.4 KiB · GQA-8 135 KiB (×4.4) · MHA 270 KiB (×8.9) per token"
    QString comparisonToolTip() const;  // the formulas with this model's numbers
    QRect comparisonRect() const;       // where the plot is, widget coordinates

    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int width) const override;
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    QSize exportSize() const override;
    void renderExport(QPainter& painter) const override;
    QString exportTitle() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
    bool event(QEvent* event) override;

private:
    struct Sections {
        QRect title, fill, fillText, limit, blocks, blocksText, bytes, layers, comparison;
        int height = 0;
    };
    Sections layoutFor(int width) const;
    void paintAll(QPainter& p, int width) const;
    void paintComparison(QPainter& p, const QRect& rect) const;
    void updateDescription();

    ModelShape m_shape;
    CacheState m_state;
};

}  // namespace dsv2::ui
