// Dialogs and the sidebar's model on their own: conversation settings (defaults shown, presets,
// only chosen fields stored), export choices, the lazily paged conversation list.
#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QSpinBox>
#include <QtTest>

#include "backend/null_backend.h"
#include "export/export_dialog.h"
#include "settings/conversation_settings_dialog.h"
#include "settings/presets.h"
#include "sidebar/conversation_list_model.h"

using namespace dsv2::ui;

namespace {

// Records list requests; the test answers them as the storage worker would.
class FakeBackend : public NullBackend {
public:
    using NullBackend::NullBackend;
    void requestConversations(int offset, int limit) override { requests.append({offset, limit}); }
    void renameConversation(qint64 id, const QString& title) override { renames.append({id, title}); }
    QVector<QPair<int, int>> requests;
    QVector<QPair<qint64, QString>> renames;
};

QVector<ConversationItem> page(int first, int count, int total) {
    QVector<ConversationItem> items;
    for (int i = first; i < first + count && i < total; ++i)
        items.append(
            {.id = total - i, .title = QStringLiteral("Chat %1").arg(total - i), .updatedAtMs = 1000 * (total - i)});
    return items;
}

GenerationSettings modelDefaults() {
    GenerationSettings d;
    d.temperature = 0.3;
    d.topP = 0.95;
    d.topK = 0;
    d.maxTokens = 256;
    d.repetitionPenalty = 1.0;
    return d;
}

}  // namespace

class DialogsTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void settingsShowTheModelDefaultsAndStoreOnlyChoices() {
        GenerationSettings current;
        current.systemPrompt = QStringLiteral("Be brief.");
        current.maxTokens = 64;
        ConversationSettingsDialog dialog(current, modelDefaults());
        auto* temperature = dialog.findChild<QDoubleSpinBox*>(QStringLiteral("temperatureSpin"));
        auto* maxTokens = dialog.findChild<QSpinBox*>(QStringLiteral("maxTokensSpin"));
        QVERIFY(temperature && maxTokens);
        QCOMPARE(temperature->value(), 0.3);  // the model's default, shown
        QCOMPARE(maxTokens->value(), 64);     // the conversation's own
        GenerationSettings out = dialog.settings();
        QCOMPARE(out.systemPrompt, QStringLiteral("Be brief."));
        QCOMPARE(out.maxTokens, std::optional<int>(64));
        QVERIFY(!out.temperature.has_value());  // untouched: stays "model default"

        temperature->setValue(0.8);  // as if typed
        QCOMPARE(dialog.settings().temperature, std::optional<double>(0.8));
        auto* combo = dialog.findChild<QComboBox*>(QStringLiteral("presetCombo"));
        QCOMPARE(combo->currentData().toString(), QString());  // custom

        dialog.applyPresetById(QStringLiteral("precise"));
        out = dialog.settings();
        QCOMPARE(out.temperature, std::optional<double>(0.0));
        QCOMPARE(combo->currentData().toString(), QStringLiteral("precise"));
        QCOMPARE(out.maxTokens, std::optional<int>(64));  // presets touch sampling only

        dialog.applyPresetById(QStringLiteral("model"));
        out = dialog.settings();
        QVERIFY(!out.temperature && !out.topP && !out.topK && !out.maxTokens && !out.repetitionPenalty);
        QCOMPARE(out.systemPrompt, QStringLiteral("Be brief."));
        QCOMPARE(temperature->value(), 0.3);

        auto* fixed = dialog.findChild<QCheckBox*>(QStringLiteral("fixedSeedCheck"));
        auto* seed = dialog.findChild<QSpinBox*>(QStringLiteral("seedSpin"));
        QVERIFY(!seed->isEnabled());
        fixed->setChecked(true);
        seed->setValue(1234);
        QCOMPARE(dialog.settings().seed, std::optional<quint64>(1234));
    }

    void presetsMatch() {
        for (const SamplingPreset& p : samplingPresets()) {
            if (p.id == QLatin1String("model")) continue;
            QCOMPARE(matchingPreset(applyPreset({}, p)), p.id);
        }
        GenerationSettings odd;
        odd.temperature = 0.42;
        QCOMPARE(matchingPreset(odd), QString());
    }

    void exportDialogFollowsTheFormat() {
        ExportDialog dialog(7, QStringLiteral("My: chat/about *things*"), QStringLiteral("/tmp/exports"));
        ExportRequest r = dialog.request();
        QCOMPARE(r.conversationIds, QVector<qint64>{7});
        QCOMPARE(r.format, ExportFormat::Markdown);
        QCOMPARE(r.filePath,
                 QStringLiteral("/tmp/exports/My chat about things.md"));  // no path separators from the title
        dialog.setFormat(ExportFormat::Html);
        QCOMPARE(dialog.filePath(), QStringLiteral("/tmp/exports/My chat about things.html"));
        dialog.setAllConversations(true);
        QVERIFY(dialog.request().conversationIds.isEmpty());

        ExportDialog noConversation(0, QString(), QStringLiteral("/tmp"));
        QVERIFY(noConversation.request().conversationIds.isEmpty());  // only "all" makes sense
    }

    void conversationListPagesAndKeepsOrder() {
        FakeBackend backend;
        ConversationListModel model(&backend);
        model.reload();
        QCOMPARE(backend.requests.size(), 1);
        QCOMPARE(backend.requests.first(), qMakePair(0, ConversationListModel::kPageSize));
        QVERIFY(!model.canFetchMore({}));  // one request at a time
        const int total = 450;
        Q_EMIT backend.conversationsListed(0, page(0, 200, total), true);
        QCOMPARE(model.rowCount(), 200);
        QVERIFY(model.canFetchMore({}));
        model.fetchMore({});
        QCOMPARE(backend.requests.last(), qMakePair(200, ConversationListModel::kPageSize));
        Q_EMIT backend.conversationsListed(200, page(200, 200, total), true);
        model.fetchMore({});
        Q_EMIT backend.conversationsListed(400, page(400, 200, total), false);
        QCOMPARE(model.rowCount(), total);
        QVERIFY(!model.canFetchMore({}));

        // A new conversation goes on top; an updated old one moves up; deleted ones leave.
        Q_EMIT backend.conversationUpdated({.id = 1000, .title = QStringLiteral("New"), .updatedAtMs = 10'000'000});
        QCOMPARE(model.idAt(0), qint64{1000});
        Q_EMIT backend.conversationUpdated({.id = 3, .title = QStringLiteral("Chat 3"), .updatedAtMs = 20'000'000});
        QCOMPARE(model.idAt(0), qint64{3});
        QCOMPARE(model.rowCount(), total + 1);
        Q_EMIT backend.conversationDeleted(1000, QStringLiteral("New"));
        QCOMPARE(model.rowOf(1000), -1);
        QCOMPARE(model.rowCount(), total);

        // Renaming in place: shown at once, sent to the backend.
        QVERIFY(model.setData(model.index(1), QStringLiteral("  Better   title "), Qt::EditRole));
        QCOMPARE(model.index(1).data().toString(), QStringLiteral("Better title"));
        QCOMPARE(backend.renames.size(), 1);
        QCOMPARE(backend.renames.first().second, QStringLiteral("Better title"));
        QVERIFY(!model.setData(model.index(1), QStringLiteral("   "), Qt::EditRole));  // no empty titles
    }
};

QTEST_MAIN(DialogsTest)
#include "ui_dialogs_test.moc"
