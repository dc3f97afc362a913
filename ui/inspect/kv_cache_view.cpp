#include "kv_cache_view.h"

#include <QHelpEvent>
#include <QLocale>
#include <QPainter>
#include <QToolTip>

#include <algorithm>
#include <array>

#include "inspect_colors.h"
#include "token_text.h"

namespace dsv2::ui {
namespace {

constexpr int kMargin = 8;
constexpr int kBlockSquare = 8;
constexpr int kBlockGap = 2;
constexpr int kMaxBlockRows = 6;  // beyond this many rows of squares, blocks are drawn as a bar
constexpr int kBarRowHeight = 24;

QString number(qint64 n) { return QLocale().toString(n); }

QString ratio(double r) { return QStringLiteral("×%1").arg(r, 0, 'f', 1); }

}  // namespace

KvCacheView::KvCacheView(QWidget* parent) : QWidget(parent) {
    qRegisterMetaType<dsv2::ui::ModelShape>();
    qRegisterMetaType<dsv2::ui::CacheState>();
    setAccessibleName(tr("KV cache"));
    QSizePolicy policy(QSizePolicy::Preferred, QSizePolicy::Preferred);
    policy.setHeightForWidth(true);
    setSizePolicy(policy);
    updateDescription();
}

void KvCacheView::setModelShape(const ModelShape& shape) {
    m_shape = shape;
    updateDescription();
    updateGeometry();
    update();
}

void KvCacheView::setCacheState(const CacheState& state) {
    if (state == m_state) return;
    const bool relayout = state.blocksCapacity != m_state.blocksCapacity;
    m_state = state;
    updateDescription();
    if (relayout) updateGeometry();
    update();
}

void KvCacheView::clearCacheState() { setCacheState({}); }

QString KvCacheView::fillText() const {
    if (!m_state.isValid()) return tr("No session: the cache fills as a conversation runs.");
    return tr("Context: %1 of %2 (%3 %)")
        .arg(formatTokenCount(m_state.tokens), number(m_state.capacityTokens))
        .arg(100.0 * m_state.fill(), 0, 'f', m_state.fill() < 0.1 ? 1 : 0);
}

QString KvCacheView::limitText() const {
    if (!m_state.isValid()) return {};
    const qint64 left = std::max<qint64>(0, m_state.capacityTokens - m_state.tokens);
    return tr("%1 left. At the limit the answer stops with “context full”, and a prompt that does not fit is "
              "refused; nothing is evicted. Start a new conversation, or edit an earlier prompt to branch off "
              "with a shorter context.")
        .arg(formatTokenCount(left));
}

QString KvCacheView::blocksText() const {
    if (!m_state.isValid()) return {};
    return tr("Blocks of %1 tokens: %2 used, %3 free, %4 in all")
        .arg(CacheState::kBlockTokens)
        .arg(number(m_state.blocksUsed), number(std::max<qint64>(0, m_state.blocksCapacity - m_state.blocksUsed)),
             number(m_state.blocksCapacity));
}

QString KvCacheView::bytesText() const {
    if (!m_state.isValid()) return {};
    QString stored;
    const qint64 mla = m_shape.isValid() ? m_shape.mlaBytesPerToken() : 0;
    if (mla > 0 && m_state.bytesPerToken == 2 * mla)
        stored = tr(" (fp32, as the CPU backend keeps it)");
    else if (mla > 0 && m_state.bytesPerToken == mla)
        stored = tr(" (bf16)");
    return tr("Bytes: %1 used, %2 reserved, %3 at capacity; %4 per token as stored%5")
        .arg(formatByteSize(m_state.bytesUsed), formatByteSize(m_state.bytesReserved),
             formatByteSize(m_state.bytesCapacity), formatByteSize(m_state.bytesPerToken), stored);
}

QString KvCacheView::perLayerText() const {
    if (!m_state.isValid() || m_shape.layers <= 0) return {};
    const qint64 layers = m_shape.layers;
    return tr("Per layer (%1 layers, one latent of %2 values per token each): %3 used of %4")
        .arg(layers)
        .arg(m_shape.kvLoraRank + m_shape.qkRopeHeadDim)
        .arg(formatByteSize(m_state.bytesUsed / layers), formatByteSize(m_state.bytesCapacity / layers));
}

QString KvCacheView::comparisonText() const {
    if (!m_shape.isValid()) return tr("Load a model to compare its cache with MHA and GQA.");
    const double mla = static_cast<double>(m_shape.mlaBytesPerToken());
    return tr("Per token (bf16): MLA %1 · GQA-%2 %3 (%4) · MHA %5 (%6)")
        .arg(formatByteSize(m_shape.mlaBytesPerToken()))
        .arg(m_shape.gqaGroups())
        .arg(formatByteSize(m_shape.gqaBytesPerToken()), ratio(static_cast<double>(m_shape.gqaBytesPerToken()) / mla),
             formatByteSize(m_shape.mhaBytesPerToken()), ratio(m_shape.mhaOverMla()));
}

QString KvCacheView::comparisonToolTip() const {
    if (!m_shape.isValid()) return {};
    const ModelShape& s = m_shape;
    const int qk = s.qkNopeHeadDim + s.qkRopeHeadDim;
    QString tip = tr("<b>Bytes per token, all layers, bf16 (2 bytes)</b><br>"
                     "MLA = layers × (kv_lora_rank + qk_rope_head_dim) × 2 = %1 × (%2 + %3) × 2 = %4 B<br>"
                     "MHA = layers × heads × (qk_nope + qk_rope + v_head) × 2 = %1 × %5 × (%6 + %3 + %7) × 2 = %8 B<br>"
                     "GQA-%9 = layers × %9 × (qk_head + v_head) × 2 = %1 × %9 × (%10 + %7) × 2 = %11 B")
                      .arg(s.layers)
                      .arg(s.kvLoraRank)
                      .arg(s.qkRopeHeadDim)
                      .arg(number(s.mlaBytesPerToken()))
                      .arg(s.heads)
                      .arg(s.qkNopeHeadDim)
                      .arg(s.vHeadDim)
                      .arg(number(s.mhaBytesPerToken()))
                      .arg(s.gqaGroups())
                      .arg(qk)
                      .arg(number(s.gqaBytesPerToken()));
    if (m_state.isValid()) {
        tip += tr("<br>At the full context of %1 tokens: MLA %2, GQA-%3 %4, MHA %5")
                   .arg(number(m_state.capacityTokens), formatByteSize(s.mlaBytesPerToken() * m_state.capacityTokens))
                   .arg(s.gqaGroups())
                   .arg(formatByteSize(s.gqaBytesPerToken() * m_state.capacityTokens),
                        formatByteSize(s.mhaBytesPerToken() * m_state.capacityTokens));
    }
    return tip;
}

void KvCacheView::updateDescription() {
    QStringList parts;
    for (const QString& s : {fillText(), blocksText(), bytesText(), perLayerText(), comparisonText()}) {
        if (!s.isEmpty()) parts << s;
    }
    setAccessibleDescription(parts.join(QStringLiteral(". ")));
}

KvCacheView::Sections KvCacheView::layoutFor(int width) const {
    Sections s;
    const QFontMetrics fm(font());
    const int line = fm.height();
    const int inner = std::max(120, width - 2 * kMargin);
    int y = kMargin;
    const auto take = [&](QRect& r, int h, int after) {
        r = QRect(kMargin, y, inner, h);
        y += h + after;
    };
    take(s.title, line + 4, 6);
    if (m_state.isValid()) {
        take(s.fill, 16, 4);
        take(s.fillText, line, 2);
        const int limitHeight = fm.boundingRect(QRect(0, 0, inner, 1000), Qt::TextWordWrap, limitText()).height();
        take(s.limit, limitHeight, 10);
        const int columns = std::max(1, inner / (kBlockSquare + kBlockGap));
        const auto rows = static_cast<int>((m_state.blocksCapacity + columns - 1) / columns);
        const int blocksHeight = rows <= kMaxBlockRows ? rows * (kBlockSquare + kBlockGap) : 14;
        take(s.blocks, blocksHeight, 4);
        take(s.blocksText, line, 6);
        const int bytesHeight = fm.boundingRect(QRect(0, 0, inner, 1000), Qt::TextWordWrap, bytesText()).height();
        take(s.bytes, bytesHeight, 6);
        const int layersHeight = m_shape.layers > 0 ? 22 + line + 2 : 0;
        take(s.layers, layersHeight, 12);
    }
    take(s.comparison, line + 8 + 3 * kBarRowHeight + line + 6, 0);
    s.height = y + kMargin;
    return s;
}

int KvCacheView::heightForWidth(int width) const { return layoutFor(width).height; }

QSize KvCacheView::sizeHint() const { return {460, heightForWidth(460)}; }

QSize KvCacheView::minimumSizeHint() const { return {260, 160}; }

QRect KvCacheView::comparisonRect() const { return layoutFor(width()).comparison; }

void KvCacheView::paintComparison(QPainter& p, const QRect& r) const {
    const QPalette& pal = palette();
    const QFontMetrics fm(p.font());
    p.setPen(pal.color(QPalette::WindowText));
    const bool withContext = m_state.isValid() && m_state.tokens > 0;
    const QString heading = withContext ? tr("What the same context costs (bf16): per token, and for these %1")
                                              .arg(formatTokenCount(m_state.tokens))
                                        : tr("What each token costs to cache (bf16)");
    QFont bold = p.font();
    bold.setBold(true);
    p.setFont(bold);
    p.drawText(QRect(r.left(), r.top(), r.width(), fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(heading, Qt::ElideRight, r.width()));
    p.setFont(font());
    if (!m_shape.isValid()) {
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(r.adjusted(0, fm.height() + 8, 0, 0), Qt::AlignLeft | Qt::AlignTop, comparisonText());
        return;
    }
    struct Row {
        QString name;
        qint64 bytes;
        bool ours;
    };
    const std::array<Row, 3> rows = {{
        {tr("MLA (cached)"), m_shape.mlaBytesPerToken(), true},
        {tr("GQA-%1").arg(m_shape.gqaGroups()), m_shape.gqaBytesPerToken(), false},
        {tr("MHA"), m_shape.mhaBytesPerToken(), false},
    }};
    const qint64 maxBytes = std::max({rows[0].bytes, rows[1].bytes, rows[2].bytes});
    const int nameWidth = fm.horizontalAdvance(tr("MLA (cached)")) + 10;
    const QString widest =
        withContext ? QStringLiteral("000.0 KiB/token · 000.0 GiB  ×00.0") : QStringLiteral("000.0 KiB/token  ×00.0");
    const int valueWidth = std::min(r.width() / 2, fm.horizontalAdvance(widest) + 8);
    const int barSpace = std::max(20, r.width() - nameWidth - valueWidth);
    const QColor accent = pal.color(QPalette::Highlight);
    const QColor other = mixColors(pal.color(QPalette::Text), pal.color(QPalette::Base), 0.55);
    int y = r.top() + fm.height() + 8;
    for (const Row& row : rows) {
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(QRect(r.left(), y, nameWidth, kBarRowHeight), Qt::AlignVCenter | Qt::AlignLeft, row.name);
        const int w =
            std::max(2, static_cast<int>(static_cast<double>(row.bytes) / static_cast<double>(maxBytes) * barSpace));
        p.fillRect(QRect(r.left() + nameWidth, y + 4, w, kBarRowHeight - 8), row.ours ? accent : other);
        QString value = tr("%1/token").arg(formatByteSize(row.bytes));
        if (withContext) value += QStringLiteral(" · ") + formatByteSize(row.bytes * m_state.tokens);
        const double factor = static_cast<double>(row.bytes) / static_cast<double>(rows[0].bytes);
        if (!row.ours) value += QStringLiteral("  ") + ratio(factor);
        p.setPen(row.ours ? pal.color(QPalette::WindowText) : pal.color(QPalette::Text));
        p.drawText(QRect(r.left() + nameWidth + w + 6, y, r.width() - nameWidth - w - 6, kBarRowHeight),
                   Qt::AlignVCenter | Qt::AlignLeft, value);
        y += kBarRowHeight;
    }
    p.setPen(pal.color(QPalette::PlaceholderText));
    p.drawText(QRect(r.left(), y + 4, r.width(), fm.height()), Qt::AlignLeft | Qt::AlignVCenter,
               fm.elidedText(tr("%1: %2 layers, %3 heads, latent %4 + rope %5 (hover for the formulas)")
                                 .arg(m_shape.name.isEmpty() ? tr("This model") : m_shape.name)
                                 .arg(m_shape.layers)
                                 .arg(m_shape.heads)
                                 .arg(m_shape.kvLoraRank)
                                 .arg(m_shape.qkRopeHeadDim),
                             Qt::ElideRight, r.width()));
}

void KvCacheView::paintAll(QPainter& p, int width) const {
    const Sections s = layoutFor(width);
    const QPalette& pal = palette();
    const QFontMetrics fm(p.font());
    p.fillRect(QRect(0, 0, width, s.height), pal.color(QPalette::Base));
    QFont bold = p.font();
    bold.setBold(true);
    p.setFont(bold);
    p.setPen(pal.color(QPalette::WindowText));
    p.drawText(s.title, Qt::AlignLeft | Qt::AlignVCenter,
               m_shape.name.isEmpty() ? tr("Latent KV cache") : tr("Latent KV cache · %1").arg(m_shape.name));
    p.setFont(font());
    const QColor accent = pal.color(QPalette::Highlight);
    const QColor track = mixColors(pal.color(QPalette::Base), pal.color(QPalette::Text), 0.10);
    if (m_state.isValid()) {
        // Context fill: the bar turns warm in the last tenth.
        p.fillRect(s.fill, track);
        const double fill = std::clamp(m_state.fill(), 0.0, 1.0);
        const QColor fillColor = fill >= 0.9 ? QColor(0xd9, 0x48, 0x1c) : accent;
        p.fillRect(QRect(s.fill.left(), s.fill.top(), static_cast<int>(fill * s.fill.width() + 0.5), s.fill.height()),
                   fillColor);
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(s.fillText, Qt::AlignLeft | Qt::AlignVCenter, fillText());
        p.setPen(pal.color(QPalette::PlaceholderText));
        p.drawText(s.limit, Qt::AlignLeft | Qt::TextWordWrap, limitText());

        // Blocks: one square each, or a bar when there are too many to draw.
        const int columns = std::max(1, s.blocks.width() / (kBlockSquare + kBlockGap));
        const auto rows = static_cast<int>((m_state.blocksCapacity + columns - 1) / columns);
        if (rows <= kMaxBlockRows) {
            for (qint64 b = 0; b < m_state.blocksCapacity; ++b) {
                const int col = static_cast<int>(b % columns);
                const int row = static_cast<int>(b / columns);
                p.fillRect(QRect(s.blocks.left() + col * (kBlockSquare + kBlockGap),
                                 s.blocks.top() + row * (kBlockSquare + kBlockGap), kBlockSquare, kBlockSquare),
                           b < m_state.blocksUsed ? accent : track);
            }
        } else {
            p.fillRect(s.blocks, track);
            const double used =
                m_state.blocksCapacity > 0 ? double(m_state.blocksUsed) / double(m_state.blocksCapacity) : 0.0;
            p.fillRect(QRect(s.blocks.left(), s.blocks.top(), std::max(1, static_cast<int>(used * s.blocks.width())),
                             s.blocks.height()),
                       accent);
        }
        p.setPen(pal.color(QPalette::WindowText));
        p.drawText(s.blocksText, Qt::AlignLeft | Qt::AlignVCenter, blocksText());
        p.drawText(s.bytes, Qt::AlignLeft | Qt::TextWordWrap, bytesText());

        // Per layer: every layer holds the same latent, so the bars are equal; they show the
        // cache is spread evenly over the layers and how full each one is.
        if (m_shape.layers > 0) {
            const int n = m_shape.layers;
            const int barWidth = std::clamp(s.layers.width() / n - 2, 2, 14);
            const double usedShare =
                m_state.bytesCapacity > 0 ? double(m_state.bytesUsed) / double(m_state.bytesCapacity) : 0.0;
            for (int l = 0; l < n; ++l) {
                const QRect bar(s.layers.left() + l * (barWidth + 2), s.layers.top(), barWidth, 20);
                p.fillRect(bar, track);
                const int h = std::max(usedShare > 0 ? 1 : 0, static_cast<int>(usedShare * bar.height() + 0.5));
                p.fillRect(QRect(bar.left(), bar.bottom() - h + 1, bar.width(), h), accent);
            }
            p.setPen(pal.color(QPalette::WindowText));
            p.drawText(QRect(s.layers.left(), s.layers.top() + 22, s.layers.width(), fm.height()),
                       Qt::AlignLeft | Qt::AlignVCenter,
                       fm.elidedText(perLayerText(), Qt::ElideRight, s.layers.width()));
        }
    }
    paintComparison(p, s.comparison);
}

void KvCacheView::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    paintAll(p, width());
}

bool KvCacheView::event(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        const auto* help = static_cast<QHelpEvent*>(event);
        const QRect r = comparisonRect();
        if (r.contains(help->pos()) && m_shape.isValid())
            QToolTip::showText(help->globalPos(), comparisonToolTip(), this, r);
        else
            QToolTip::hideText();
        return true;
    }
    return QWidget::event(event);
}

QSize KvCacheView::exportSize() const {
    const int w = 560;
    return {w, heightForWidth(w)};
}

void KvCacheView::renderExport(QPainter& painter) const {
    painter.save();
    painter.setFont(font());
    painter.setRenderHint(QPainter::Antialiasing, false);
    paintAll(painter, exportSize().width());
    painter.restore();
}

QString KvCacheView::exportTitle() const {
    return m_shape.name.isEmpty() ? tr("Latent KV cache") : tr("Latent KV cache, %1").arg(m_shape.name);
}

}  // namespace dsv2::ui
