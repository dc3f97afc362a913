// The main window assembles its parts and remembers its geometry.
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QtTest>

#include "main_window.h"

class MainWindowTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        QCoreApplication::setOrganizationName(QStringLiteral("dsv2-chat-test"));
        QCoreApplication::setApplicationName(QStringLiteral("main_window_test"));
        QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_dir.path());
        QSettings().clear();
    }

    void hasSidebarChatAreaAndStatusBar() {
        dsv2::ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QVERIFY(window.findChild<QListView*>(QStringLiteral("conversationList")));
        QVERIFY(window.findChild<QLineEdit*>(QStringLiteral("searchBox")));
        QVERIFY(window.findChild<QPlainTextEdit*>(QStringLiteral("promptInput")));
        auto* send = window.findChild<QPushButton*>(QStringLiteral("sendButton"));
        QVERIFY(send);
        QVERIFY(!send->isEnabled());  // nothing to send to without a model
        QVERIFY(window.statusBar()->isVisible());
        window.setBackendDescription(QStringLiteral("CPU"));
        QCOMPARE(window.findChild<QLabel*>(QStringLiteral("backendLabel"))->text(), QStringLiteral("CPU"));
    }

    void controlsHaveAccessibleNames() {
        dsv2::ui::MainWindow window;
        for (const char* name : {"newChatButton", "searchBox", "conversationList", "promptInput", "sendButton"}) {
            auto* w = window.findChild<QWidget*>(QString::fromLatin1(name));
            QVERIFY2(w, name);
            QVERIFY2(!w->accessibleName().isEmpty(), name);
        }
    }

    void ctrlFFocusesSearch() {
        dsv2::ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowActive(&window));
        QTest::keyClick(&window, Qt::Key_F, Qt::ControlModifier);
        QTRY_VERIFY(window.findChild<QLineEdit*>(QStringLiteral("searchBox"))->hasFocus());
    }

    void geometryIsRestored() {
        {
            dsv2::ui::MainWindow window;
            window.show();
            QVERIFY(QTest::qWaitForWindowExposed(&window));
            window.resize(900, 640);
            window.close();  // saves the state
        }
        dsv2::ui::MainWindow again;
        QCOMPARE(again.size(), QSize(900, 640));
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(MainWindowTest)
#include "main_window_test.moc"
