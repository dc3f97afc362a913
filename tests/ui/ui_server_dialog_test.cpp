// Model → Connect to a server…, without a network: what an address typed by a person becomes, the
// dialog refusing what cannot be one, the remembered servers in the settings, the model panel for a
// served model, and the connection-error dialog of the window.
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QTemporaryDir>
#include <QtTest>

#include "backend/null_backend.h"
#include "main_window.h"
#include "model/model_info_panel.h"
#include "model/saved_servers.h"
#include "model/server_dialog.h"

using namespace dsv2::ui;

class ServerDialogTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QCoreApplication::setOrganizationName(QStringLiteral("dsv2-chat-test"));
        QCoreApplication::setApplicationName(QStringLiteral("ui_server_dialog_test"));
        QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_settingsDir.path());
    }
    void init() { QSettings().clear(); }

    void addressesAreNormalized_data() {
        QTest::addColumn<QString>("typed");
        QTest::addColumn<QString>("url");
        QTest::addColumn<QString>("problem");  // a phrase of the error; empty: accepted
        QTest::newRow("host:port") << "localhost:8000"
                                   << "http://localhost:8000/v1"
                                   << "";
        QTest::newRow("trailing slash") << " http://10.0.0.5:8000/v1/ "
                                        << "http://10.0.0.5:8000/v1"
                                        << "";
        QTest::newRow("no path") << "http://gpu-box:30000"
                                 << "http://gpu-box:30000/v1"
                                 << "";
        QTest::newRow("https with path") << "https://api.example.com/openai/v1"
                                         << "https://api.example.com/openai/v1"
                                         << "";
        QTest::newRow("empty") << "   "
                               << ""
                               << "Enter the server's address";
        QTest::newRow("other scheme") << "ftp://host/v1"
                                      << ""
                                      << "not ftp://";
        QTest::newRow("no host") << "http://"
                                 << ""
                                 << "is not a server address";
        QTest::newRow("query") << "http://host:8000/v1?key=1"
                               << ""
                               << "query";
    }
    void addressesAreNormalized() {
        QFETCH(QString, typed);
        QFETCH(QString, url);
        QFETCH(QString, problem);
        QString error;
        QCOMPARE(normalizeServerUrl(typed, &error), url);
        if (problem.isEmpty())
            QVERIFY2(error.isEmpty(), qPrintable(error));
        else
            QVERIFY2(error.contains(problem), qPrintable(error));
    }

    void dialogRefusesWhatCannotBeAnAddress() {
        ServerDialog dialog({.url = QStringLiteral("http://127.0.0.1:8000/v1"), .model = QStringLiteral("m")});
        auto* connectButton = dialog.findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok);
        auto* problem = dialog.findChild<QLabel*>(QStringLiteral("serverProblem"));
        QVERIFY(connectButton->isEnabled());
        QVERIFY(problem->isHidden());
        QCOMPARE(dialog.keyEdit()->echoMode(), QLineEdit::Password);

        dialog.urlEdit()->setText(QStringLiteral("gopher://old"));
        QVERIFY(!connectButton->isEnabled());
        QVERIFY(!problem->isHidden());
        QVERIFY(problem->text().contains(QStringLiteral("gopher://")));

        dialog.urlEdit()->setText(QStringLiteral("gpu-box:8000"));
        dialog.modelEdit()->setText(QStringLiteral("  DeepSeek-V2-Lite-Chat "));
        dialog.keyEdit()->setText(QStringLiteral("sekret"));
        QVERIFY(connectButton->isEnabled());
        const ServerEntry e = dialog.entry();
        QCOMPARE(e.url, QStringLiteral("http://gpu-box:8000/v1"));
        QCOMPARE(e.model, QStringLiteral("DeepSeek-V2-Lite-Chat"));
        QCOMPARE(e.apiKey, QStringLiteral("sekret"));
    }

    void serversAreRememberedMostRecentFirst() {
        QVERIFY(savedServers().isEmpty());
        for (int i = 0; i < kMaxSavedServers + 2; ++i)
            rememberServer({.url = QStringLiteral("http://h%1:8000/v1").arg(i), .model = QStringLiteral("m")});
        QVector<ServerEntry> list = savedServers();
        QCOMPARE(list.size(), kMaxSavedServers);
        QCOMPARE(list.first().url, QStringLiteral("http://h%1:8000/v1").arg(kMaxSavedServers + 1));
        // The same server again moves to the front with its new key, not twice in the list.
        rememberServer(
            {.url = QStringLiteral("http://h5:8000/v1"), .model = QStringLiteral("m"), .apiKey = QStringLiteral("k")});
        list = savedServers();
        QCOMPARE(list.size(), kMaxSavedServers);
        QCOMPARE(list.first().apiKey, QStringLiteral("k"));
        QCOMPARE(std::count_if(list.begin(), list.end(), [](const ServerEntry& s) { return s.url.contains("//h5:"); }),
                 1);

        QVERIFY(!lastServer().has_value());
        setLastServer(list.first());
        QCOMPARE(*lastServer(), list.first());
        setLastServer(std::nullopt);
        QVERIFY(!lastServer().has_value());
        forgetServers();
        QVERIFY(savedServers().isEmpty());
    }

    void modelPanelSaysWhatTheServerDoesNotTell() {
        ModelInfoPanel panel;
        ModelSummary s;
        s.name = QStringLiteral("DeepSeek-V2-Lite-Chat");
        s.path = QStringLiteral("http://gpu-box:8000/v1");
        s.backend = QStringLiteral("remote: http://gpu-box:8000/v1");
        s.contextLimit = 32768;
        s.server = ServerEntry{.url = s.path};
        panel.setModel(s);
        QCOMPARE(panel.fieldText(QStringLiteral("path")), s.path);
        QCOMPARE(panel.fieldText(QStringLiteral("parameters")), QStringLiteral("not reported by the server"));
        QCOMPARE(panel.fieldText(QStringLiteral("experts")), QStringLiteral("not reported by the server"));
        QCOMPARE(panel.fieldText(QStringLiteral("gpu")), QStringLiteral("on the server"));
        QVERIFY(panel.fieldText(QStringLiteral("context")).contains(QStringLiteral("32")));
        QVERIFY(panel.findChild<QLabel*>(QStringLiteral("modelNote"))->text().contains(s.path));
    }

    // A backend that cannot reach servers (here the window's own NullBackend) answers with the
    // connection dialog, which offers another server.
    void connectionErrorDialogOffersAnotherServer() {
        MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        window.connectServer({.url = QStringLiteral("http://127.0.0.1:1/v1")});
        QMessageBox* box = nullptr;
        QTRY_VERIFY((box = window.findChild<QMessageBox*>(QStringLiteral("modelLoadErrorDialog"))) != nullptr);
        QVERIFY(box->text().contains(QStringLiteral("server at http://127.0.0.1:1/v1")));
        QVERIFY(box->informativeText().contains(QStringLiteral("cannot connect to servers")));
        bool offersServer = false;
        for (QAbstractButton* b : box->buttons())
            offersServer |= b->text() == QStringLiteral("Connect to another server…");
        QVERIFY(offersServer);
        QVERIFY(savedServers().isEmpty());  // only a server that answered is remembered
        box->close();
    }

private:
    QTemporaryDir m_settingsDir;
};

QTEST_MAIN(ServerDialogTest)
#include "ui_server_dialog_test.moc"
