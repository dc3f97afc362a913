// `dsv2 inspect routing --db FILE --message ID --format csv|json`, run as a person would, on a
// database written through storage's writer. The expected bytes are written out by hand (weights
// exact in f16, so storage keeps them unchanged).
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>

#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/streaming_writer.h"

using namespace dsv2::storage;

namespace {

struct Run {
    int code = -1;
    QByteArray out;
    QByteArray err;
};

Run runDsv2(const QStringList& args) {
    QProcess p;
    p.start(QStringLiteral(DSV2_CLI_PATH), args);
    Run r;
    if (!p.waitForFinished(60000)) return r;
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = p.readAllStandardOutput();
    r.err = p.readAllStandardError();
    return r;
}

TokenRecord record(std::int32_t id, std::vector<std::uint16_t> ids, std::vector<float> weights, float logprob) {
    TokenRecord r;
    r.tokenId = id;
    r.logprob = logprob;
    r.moeLayers = 2;
    r.topK = 2;
    r.expertIds = std::move(ids);
    r.expertWeights = std::move(weights);
    return r;
}

const char* kCsv =
    "token,source,token_id,text,moe_layer,model_layer,expert_1,weight_1,expert_2,weight_2\n"
    "0,answer,100,Hi,0,1,3,0.75,5,0.25\n"
    "0,answer,100,Hi,1,2,0,0.625,7,0.375\n"
    "1,answer,101,\"!\"\",\",0,1,5,0.5,3,0.5\n"
    "1,answer,101,\"!\"\",\",1,2,7,0.875,1,0.125\n";

}  // namespace

class InspectCliTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        m_db = m_dir.filePath(QStringLiteral("history.sqlite"));
        auto store = ConversationStore::open(m_db.toStdString());
        QVERIFY(store.hasValue());
        // The conversation remembers its model folder: tiny-lite's MoE layers are 1 and 2, 8 experts.
        const auto c = store->createConversation({.title = "Routing", .modelDir = DSV2_TEST_DATA_DIR "/tiny-lite"});
        const auto c2 = store->createConversation({.title = "No model folder"});
        QVERIFY(c.hasValue() && c2.hasValue());
        const auto user = store->appendUserMessage(*c, std::nullopt, "Say hi.");
        QVERIFY(user.hasValue());
        m_user = *user;
        for (ConversationId conv : {*c, *c2}) {
            const auto parent = store->appendUserMessage(conv, std::nullopt, "Say hi.");
            QVERIFY(parent.hasValue());
            WriterOptions options;
            options.backgroundFlush = false;
            auto w = store->beginAssistantMessage(conv, *parent, options);
            QVERIFY(w.hasValue());
            TokenRecord hi = record(100, {3, 5, 0, 7}, {0.75f, 0.25f, 0.625f, 0.375f}, -0.25f);
            hi.topLogprobs = {{100, -0.25f, "Hi"}, {102, -2.0f, "Hello"}};
            (*w)->append("Hi", hi);
            (*w)->append("!\",", record(101, {5, 3, 7, 1}, {0.5f, 0.5f, 0.875f, 0.125f}, -1.5f));
            QVERIFY((*w)->finish({.generatedTokens = 2, .stopReason = "eos"}).hasValue());
            (conv == *c ? m_answer : m_bareAnswer) = (*w)->messageId();
        }
    }

    void csvToStdout() {
        const Run r =
            runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_answer), "--format", "csv"});
        QVERIFY2(r.code == 0, r.err.constData());
        QCOMPARE(r.out, QByteArray(kCsv));
        // csv is the default.
        QCOMPARE(runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_answer)}).out,
                 QByteArray(kCsv));
    }

    void jsonToFile() {
        const QString out = m_dir.filePath(QStringLiteral("routing.json"));
        const Run r = runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_answer), "--format",
                               "json", "--out", out});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY(r.out.isEmpty());
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray expected =
            "{\"format\":\"dsv2-routing\",\"version\":1,\"messageId\":" + QByteArray::number(m_answer) +
            ",\"moeLayers\":2,\"topK\":2,\"experts\":8,\"modelLayers\":[1,2],\"tokens\":[\n"
            "{\"index\":0,\"source\":\"answer\",\"id\":100,\"text\":\"Hi\",\"logprob\":-0.25,\"alternatives\":"
            "[{\"id\":100,\"text\":\"Hi\",\"logprob\":-0.25},{\"id\":102,\"text\":\"Hello\",\"logprob\":-2}],"
            "\"experts\":[[3,5],[0,7]],\"weights\":[[0.75,0.25],[0.625,0.375]]},\n"
            "{\"index\":1,\"source\":\"answer\",\"id\":101,\"text\":\"!\\\",\",\"logprob\":-1.5,\"alternatives\":[],"
            "\"experts\":[[5,3],[7,1]],\"weights\":[[0.5,0.5],[0.875,0.125]]}\n"
            "]}\n";
        QCOMPARE(f.readAll(), expected);
    }

    void withoutModelFolderTheShapeIsInferred() {
        const Run r = runDsv2(
            {"inspect", "routing", "--db", m_db, "--message", QString::number(m_bareAnswer), "--format", "json"});
        QVERIFY2(r.code == 0, r.err.constData());
        QVERIFY2(r.out.contains("\"experts\":8,\"modelLayers\":[0,1]"), r.out.constData());  // max id 7 + 1
        const Run given = runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_bareAnswer),
                                   "--model", DSV2_TEST_DATA_DIR "/tiny-lite"});
        QCOMPARE(given.out, QByteArray(kCsv));
    }

    void readOnlyFileWorks() {
        const QString copy = m_dir.filePath(QStringLiteral("readonly.sqlite"));
        QVERIFY(QFile::copy(m_db, copy));
        QVERIFY(QFile::setPermissions(copy, QFileDevice::ReadOwner | QFileDevice::ReadGroup));
        const Run r = runDsv2({"inspect", "routing", "--db", copy, "--message", QString::number(m_answer)});
        QVERIFY2(r.code == 0, r.err.constData());
        QCOMPARE(r.out, QByteArray(kCsv));
    }

    void errorsSayWhatToDo() {
        Run r = runDsv2({"inspect", "routing", "--db", m_db, "--message", "9999"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("message 9999 is not in"), r.err.constData());
        r = runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_user)});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("is a user message"), r.err.constData());
        r = runDsv2({"inspect", "routing", "--db", m_db, "--message", QString::number(m_answer), "--format", "xml"});
        QVERIFY(r.code != 0);
        QVERIFY2(r.err.contains("--format"), r.err.constData());
        r = runDsv2({"inspect", "routing", "--db", m_dir.filePath(QStringLiteral("missing.sqlite")), "--message", "1"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("does not exist"), r.err.constData());
        QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("missing.sqlite"))));  // not created
        r = runDsv2({"inspect", "routing", "--db", m_db});
        QVERIFY(r.code != 0);
        QVERIFY2(r.err.contains("--message"), r.err.constData());
    }

    void inspectAndInspectModelCoexist() {
        const Run help = runDsv2({"--help"});
        QCOMPARE(help.code, 0);
        QVERIFY(help.out.contains("inspect-model"));
        QVERIFY(help.out.contains("\n  inspect "));
        const Run model = runDsv2({"inspect-model", DSV2_TEST_DATA_DIR "/tiny-lite", "--json"});
        QVERIFY2(model.code == 0, model.err.constData());
        QVERIFY(model.out.contains("\"num_hidden_layers\"") || model.out.contains("layers"));
        QVERIFY(runDsv2({"inspect"}).code != 0);  // a group: it wants a subcommand
    }

private:
    QTemporaryDir m_dir;
    QString m_db;
    MessageId m_user = 0;
    MessageId m_answer = 0;
    MessageId m_bareAnswer = 0;
};

QTEST_GUILESS_MAIN(InspectCliTest)
#include "inspect_cli_test.moc"
