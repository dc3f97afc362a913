// The main window assembles its parts and remembers its geometry.
#include <QAbstractButton>
#include <QAbstractSpinBox>
#include <QAccessible>
#include <QComboBox>
#include <QDialog>
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

    // Every control a person can reach has a name a screen reader can say (its own accessible name,
    // or its visible text), in the window and in its dialogs.
    void everyControlHasAnAccessibleName() {
        dsv2::ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        window.showSettingsDialog();
        window.showExportDialog();
        QVERIFY(window.findChild<QDialog*>(QStringLiteral("conversationSettingsDialog")));
        QVERIFY(window.findChild<QDialog*>(QStringLiteral("exportDialog")));
        int checked = 0;
        for (QWidget* w : window.findChildren<QWidget*>()) {
            const bool control = qobject_cast<QAbstractButton*>(w) || qobject_cast<QLineEdit*>(w) ||
                                 qobject_cast<QAbstractItemView*>(w) || qobject_cast<QPlainTextEdit*>(w) ||
                                 qobject_cast<QComboBox*>(w) || qobject_cast<QAbstractSpinBox*>(w);
            if (!control || w->focusPolicy() == Qt::NoFocus) continue;
            // Editors inside spin boxes and combo boxes speak for their parent.
            if (qobject_cast<QLineEdit*>(w) &&
                (qobject_cast<QAbstractSpinBox*>(w->parentWidget()) || qobject_cast<QComboBox*>(w->parentWidget())))
                continue;
            QAccessibleInterface* a = QAccessible::queryAccessibleInterface(w);
            QVERIFY(a);
            QString name = a->text(QAccessible::Name);
            if (name.isEmpty() && qobject_cast<QAbstractButton*>(w)) name = qobject_cast<QAbstractButton*>(w)->text();
            QVERIFY2(!name.trimmed().isEmpty(), qPrintable(QStringLiteral("%1 (%2) has no accessible name")
                                                               .arg(w->objectName(), w->metaObject()->className())));
            ++checked;
        }
        QVERIFY(checked > 20);
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
