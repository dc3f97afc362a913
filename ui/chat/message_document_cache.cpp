#include "chat/message_document_cache.h"

#include <QAbstractTextDocumentLayout>
#include <QFontMetricsF>
#include <QTextBlock>
#include <QTextDocument>

#include <cmath>

namespace dsv2::ui {
namespace {

bool isCodeBlock(const QTextBlock& block) {
    const QTextBlockFormat f = block.blockFormat();
    return f.hasProperty(QTextFormat::BlockCodeFence) || f.hasProperty(QTextFormat::BlockCodeLanguage) ||
           f.nonBreakableLines();
}

// Collects the code blocks (runs of consecutive code paragraphs) and lets their lines wrap: a long
// line of code is better wrapped than cut off at the edge of the view.
QVector<MessageDocumentCache::CodeBlock> prepareCodeBlocks(QTextDocument& doc) {
    QVector<MessageDocumentCache::CodeBlock> blocks;
    bool inCode = false;
    for (QTextBlock b = doc.begin(); b.isValid(); b = b.next()) {
        if (!isCodeBlock(b)) {
            inCode = false;
            continue;
        }
        if (b.blockFormat().nonBreakableLines()) {
            QTextCursor c(b);
            QTextBlockFormat f = b.blockFormat();
            f.setNonBreakableLines(false);
            c.setBlockFormat(f);
        }
        if (!inCode) blocks.append(MessageDocumentCache::CodeBlock{});
        inCode = true;
        QString& text = blocks.last().text;
        if (!text.isEmpty()) text += QLatin1Char('\n');
        text += b.text();
    }
    return blocks;
}

void measureCodeBlocks(QTextDocument& doc, QVector<MessageDocumentCache::CodeBlock>& blocks) {
    auto* layout = doc.documentLayout();
    int index = -1;
    bool inCode = false;
    for (QTextBlock b = doc.begin(); b.isValid(); b = b.next()) {
        if (!isCodeBlock(b)) {
            inCode = false;
            continue;
        }
        if (!inCode) ++index;
        inCode = true;
        if (index >= blocks.size()) break;
        const QRectF r = layout->blockBoundingRect(b);
        blocks[index].rect = blocks[index].rect.isNull() ? r : blocks[index].rect.united(r);
    }
}

}  // namespace

MessageDocumentCache::MessageDocumentCache() = default;
MessageDocumentCache::~MessageDocumentCache() = default;

MessageDocumentCache::Entry MessageDocumentCache::document(qint64 id, quint32 revision, const QString& text,
                                                           bool markdown, int width) {
    touch(id);
    Entry& e = m_docs[id];
    if (e.doc && e.revision == revision && e.width == width) return e;
    if (!e.doc || e.revision != revision) {
        e.doc = std::make_shared<QTextDocument>();
        e.doc->setDefaultFont(m_font);
        e.doc->setDocumentMargin(0);
        QTextOption option = e.doc->defaultTextOption();
        option.setWrapMode(QTextOption::WrapAtWordBoundaryOrAnywhere);
        e.doc->setDefaultTextOption(option);
        // Model output is text, never HTML: without MarkdownNoHTML, md4c hands "<Knghtbrd> so you…"
        // (an IRC quote the demo model learned) to Qt's HTML parser as a tag, and the whole answer
        // rendered empty. Markdown stays; angle brackets are shown as typed.
        if (markdown)
            e.doc->setMarkdown(text, QTextDocument::MarkdownFeatures(QTextDocument::MarkdownDialectGitHub |
                                                                     QTextDocument::MarkdownNoHTML));
        else
            e.doc->setPlainText(text);
        e.codeBlocks = prepareCodeBlocks(*e.doc);
    }
    e.revision = revision;
    e.width = width;
    e.doc->setTextWidth(width);
    for (CodeBlock& c : e.codeBlocks) c.rect = {};
    measureCodeBlocks(*e.doc, e.codeBlocks);
    e.height = std::ceil(e.doc->size().height());
    m_heights.insert(id, {revision, width, e.height});

    while (m_docs.size() > kMaxDocuments) {
        const qint64 victim = m_lru.back();
        m_lru.pop_back();
        m_lruPos.remove(victim);
        m_docs.remove(victim);
    }
    return m_docs[id];
}

std::optional<qreal> MessageDocumentCache::knownHeight(qint64 id, quint32 revision, int width) const {
    const auto it = m_heights.constFind(id);
    if (it == m_heights.constEnd() || it->revision != revision || it->width != width) return std::nullopt;
    return it->height;
}

qreal MessageDocumentCache::estimateHeight(const QString& text, int width) const {
    const QFontMetricsF fm(m_font);
    const qreal charsPerLine = std::max<qreal>(1.0, width / std::max<qreal>(1.0, fm.averageCharWidth()));
    qreal lines = 0;
    qsizetype lineStart = 0;
    const qsizetype n = text.size();
    for (qsizetype i = 0; i <= n; ++i) {
        if (i == n || text.at(i) == QLatin1Char('\n')) {
            lines += std::max<qreal>(1.0, std::ceil(static_cast<qreal>(i - lineStart) / charsPerLine));
            lineStart = i + 1;
        }
    }
    return std::ceil(lines * fm.lineSpacing());
}

void MessageDocumentCache::setFont(const QFont& font) {
    if (font == m_font) return;
    m_font = font;
    clear();
}

void MessageDocumentCache::clear() {
    m_docs.clear();
    m_lru.clear();
    m_lruPos.clear();
    m_heights.clear();
}

void MessageDocumentCache::touch(qint64 id) {
    if (auto it = m_lruPos.find(id); it != m_lruPos.end()) {
        m_lru.splice(m_lru.begin(), m_lru, *it);
    } else {
        m_lru.push_front(id);
        m_lruPos.insert(id, m_lru.begin());
    }
}

}  // namespace dsv2::ui
