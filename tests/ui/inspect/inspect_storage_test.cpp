// Everything the inspector shows after a restart comes from storage: routing written through the
// StreamingWriter and read back (storage_routing.h) equals what was written — and, with the real
// engine (tiny-lite, CPU backend), what the engine emitted (weights rounded to the f16 storage
// keeps them in).
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>

#include "dsv2/engine.h"
#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/streaming_writer.h"
#include "inspect/engine_routing.h"
#include "inspect/inspect_colors.h"
#include "inspect/inspection_model.h"
#include "inspect/routing_heatmap.h"
#include "inspect/storage_routing.h"
#include "inspect_fixtures.h"
#include "token_codec.h"  // storage's own f16 rounding, for the expected weights

using namespace dsv2;
using namespace dsv2::storage;

namespace {

// What the GUI adapter stores for one token (app/gui/engine_worker.cpp does the same).
TokenRecord recordFromRow(const inspect::TokenRow& row, int layers, int topK) {
    TokenRecord r;
    r.tokenId = row.tokenId;
    r.logprob = row.logprob;
    for (const inspect::Alternative& a : row.alternatives) r.topLogprobs.push_back({a.tokenId, a.logprob, a.text});
    if (row.hasRouting()) {
        r.moeLayers = static_cast<std::uint16_t>(layers);
        r.topK = static_cast<std::uint8_t>(topK);
        r.expertIds = row.expertIds;
        r.expertWeights = row.weights;
    }
    return r;
}

template <typename T>
T require(Expected<T> e) {
    if (!e) qFatal("storage: %s", e.error().toString().c_str());
    return std::move(e).value();
}

void require(Expected<void> e) {
    if (!e) qFatal("storage: %s", e.error().toString().c_str());
}

struct Stored {
    ConversationId conversation = 0;
    MessageId answer = 0;
};

// `tail`: text that came without a token (the generation's final flush), as the adapter stores it.
Stored storeAnswer(const std::filesystem::path& db, const std::vector<inspect::TokenRow>& rows, int layers, int topK,
                   const std::string& tail = {}) {
    auto store = require(ConversationStore::open(db));
    Stored s;
    s.conversation = require(store.createConversation({.title = "Routing", .modelName = "tiny"}));
    const MessageId user = require(store.appendUserMessage(s.conversation, std::nullopt, "Explain MoE."));
    WriterOptions options;
    options.backgroundFlush = false;
    options.maxPendingTokens = 16;  // several batches, as a long answer would be committed
    auto writer = require(store.beginAssistantMessage(s.conversation, user, options));
    for (const inspect::TokenRow& row : rows) writer->append(row.text, recordFromRow(row, layers, topK));
    if (!tail.empty()) writer->append(tail);
    require(writer->finish({.generatedTokens = static_cast<std::int64_t>(rows.size()), .stopReason = "max_tokens"}));
    s.answer = writer->messageId();
    return s;
}

}  // namespace

class InspectStorageTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void routingRoundTripsThroughStorage() {
        const std::filesystem::path db = m_dir.filePath(QStringLiteral("synthetic.sqlite")).toStdString();
        inspect::RoutingTable written = inspect::test::liteTable(0, 80);
        const Stored s = storeAnswer(db, written.rows, written.layers, written.topK);

        // A fresh, read-only open: what the app sees after a restart.
        OpenOptions readOnly;
        readOnly.mode = OpenMode::ReadOnly;
        auto store = require(ConversationStore::open(db, readOnly));
        const inspect::RoutingTable read = require(inspect::loadMessageRouting(store, s.answer, 64));
        written.messageId = s.answer;
        written.modelLayers.clear();  // the model's layer numbers are not in the database
        QCOMPARE(read.tokenCount(), 80);
        for (int i = 0; i < 80; ++i) {
            const auto& a = read.rows[static_cast<std::size_t>(i)];
            const auto& b = written.rows[static_cast<std::size_t>(i)];
            QVERIFY2(a == b, qPrintable(QStringLiteral("row %1").arg(i)));
        }
        QVERIFY(read == written);

        const auto conversation = require(inspect::loadConversationRouting(store, s.conversation, 64));
        QCOMPARE(conversation.size(), std::size_t{1});
        QVERIFY(conversation[0] == written);

        // And the view draws the stored routing.
        ui::InspectionModel model;
        model.setTable(read);
        ui::RoutingHeatmap heat(&model);
        QCOMPARE(heat.cellColor(79, 25), ui::expertColor(written.top1(79, 25)).rgb());
        QCOMPARE(model.messageLoad(inspect::LoadMeasure::Count).tokens(), 80);
    }

    void unknownMessageIsAnError() {
        const std::filesystem::path db = m_dir.filePath(QStringLiteral("synthetic.sqlite")).toStdString();
        auto store = require(ConversationStore::open(db));
        const auto missing = inspect::loadMessageRouting(store, 987654);
        QVERIFY(!missing);
        QCOMPARE(missing.error().code(), ErrorCode::NotFound);
    }

    void engineRoutingRoundTripsThroughStorage() {
        EngineOptions options;
        options.backend = BackendChoice::Cpu;
        options.threads = 1;
        auto loaded = Engine::load(DSV2_TEST_DATA_DIR "/tiny-lite", options);
        QVERIFY2(loaded.isOk(), loaded.status().toString().c_str());
        std::unique_ptr<Engine> engine = std::move(loaded).value();
        auto session = std::move(engine->createSession()).value();
        GenerateRequest request;
        request.messages = {{"user", "Which experts answer this?"}};
        request.params.maxNewTokens = 24;
        request.params.ignoreEos = true;
        request.params.topNAlternatives = 5;
        std::vector<TokenEvent> events;
        std::string tail;
        auto result = session->generate(request, [&](const GenerateEvent& e) {
            if (const auto* t = std::get_if<TokenEvent>(&e)) events.push_back(*t);
            if (const auto* f = std::get_if<FinishedEvent>(&e)) tail = f->textDelta;
        });
        QVERIFY2(result.isOk(), result.status().toString().c_str());
        QCOMPARE(events.size(), std::size_t{24});

        const ModelInfo& info = engine->info();
        std::vector<inspect::TokenRow> emitted;
        for (const TokenEvent& e : events) emitted.push_back(inspect::tokenRow(e));
        const std::filesystem::path db = m_dir.filePath(QStringLiteral("engine.sqlite")).toStdString();
        const Stored s = storeAnswer(db, emitted, static_cast<int>(info.moeLayers.size()),
                                     static_cast<int>(info.expertsPerToken), tail);

        auto store = require(ConversationStore::open(db));
        const inspect::RoutingTable read = require(inspect::loadMessageRouting(store, s.answer));
        QCOMPARE(read.layers, 2);
        QCOMPARE(read.topK, 2);
        QCOMPARE(read.tokenCount(), 24);
        std::string content;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const TokenEvent& e = events[i];
            const inspect::TokenRow& r = read.rows[i];
            QCOMPARE(r.tokenId, e.id);
            QCOMPARE(r.text, e.textDelta);
            QCOMPARE(r.textOffset, static_cast<std::uint32_t>(content.size()));
            content += e.textDelta;
            QVERIFY(*r.logprob == e.logprob);
            QCOMPARE(r.alternatives.size(), e.alternatives.size());
            for (std::size_t a = 0; a < e.alternatives.size(); ++a) {
                QCOMPARE(r.alternatives[a].tokenId, e.alternatives[a].id);
                QVERIFY(r.alternatives[a].logprob == e.alternatives[a].logprob);
                QCOMPARE(r.alternatives[a].text, e.alternatives[a].text);
            }
            QCOMPARE(std::vector<int32_t>(r.expertIds.begin(), r.expertIds.end()), e.routing.expertIds);
            QCOMPARE(r.weights.size(), e.routing.weights.size());
            for (std::size_t w = 0; w < r.weights.size(); ++w) {
                QVERIFY(r.weights[w] == detail::roundToHalf(e.routing.weights[w]));  // exact, not fuzzy
            }
        }
        // The tokens cover the text up to the final flush, which has no token of its own.
        QCOMPARE(read.content, content + tail);
        QCOMPARE(QString::fromStdString(read.content), QString::fromStdString(result->text));
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(InspectStorageTest)
#include "inspect_storage_test.moc"
