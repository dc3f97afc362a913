#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QHBoxLayout>
#include <QKeySequence>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSplitter>
#include <QStackedWidget>
#include <QStatusBar>
#include <QStringListModel>
#include <QVBoxLayout>

namespace dsv2::ui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(QStringLiteral("dsv2-chat"));
    setObjectName(QStringLiteral("mainWindow"));

    m_splitter = new QSplitter(Qt::Horizontal, this);
    m_splitter->setObjectName(QStringLiteral("mainSplitter"));
    m_splitter->addWidget(buildSidebar());
    m_splitter->addWidget(buildChatArea());
    m_splitter->setStretchFactor(0, 0);
    m_splitter->setStretchFactor(1, 1);
    m_splitter->setSizes({260, 760});
    setCentralWidget(m_splitter);

    buildMenus();
    buildStatusBar();
    resize(1100, 720);
    restoreWindowState();
}

MainWindow::~MainWindow() = default;

QWidget* MainWindow::buildSidebar() {
    auto* sidebar = new QWidget(this);
    sidebar->setObjectName(QStringLiteral("sidebar"));
    auto* layout = new QVBoxLayout(sidebar);
    layout->setContentsMargins(6, 6, 6, 6);

    m_newChatButton = new QPushButton(tr("New chat"), sidebar);
    m_newChatButton->setObjectName(QStringLiteral("newChatButton"));
    m_newChatButton->setAccessibleName(tr("New chat"));
    m_newChatButton->setToolTip(tr("Start a new conversation (Ctrl+N)"));
    layout->addWidget(m_newChatButton);

    m_searchBox = new QLineEdit(sidebar);
    m_searchBox->setObjectName(QStringLiteral("searchBox"));
    m_searchBox->setPlaceholderText(tr("Search conversations (Ctrl+F)"));
    m_searchBox->setAccessibleName(tr("Search conversations"));
    m_searchBox->setClearButtonEnabled(true);
    layout->addWidget(m_searchBox);

    m_conversationList = new QListView(sidebar);
    m_conversationList->setObjectName(QStringLiteral("conversationList"));
    m_conversationList->setAccessibleName(tr("Conversations"));
    m_conversationList->setModel(new QStringListModel(m_conversationList));
    layout->addWidget(m_conversationList, 1);
    return sidebar;
}

QWidget* MainWindow::buildChatArea() {
    auto* area = new QWidget(this);
    area->setObjectName(QStringLiteral("chatArea"));
    auto* layout = new QVBoxLayout(area);
    layout->setContentsMargins(6, 6, 6, 6);

    m_chatStack = new QStackedWidget(area);
    m_chatStack->setObjectName(QStringLiteral("chatStack"));
    auto* empty = new QLabel(tr("<h2>No conversation yet</h2>"
                                "<p>Type a message below to start chatting.</p>"),
                             m_chatStack);
    empty->setObjectName(QStringLiteral("emptyChatLabel"));
    empty->setAlignment(Qt::AlignCenter);
    empty->setWordWrap(true);
    m_chatStack->addWidget(empty);
    layout->addWidget(m_chatStack, 1);

    auto* inputRow = new QHBoxLayout;
    m_input = new QPlainTextEdit(area);
    m_input->setObjectName(QStringLiteral("promptInput"));
    m_input->setPlaceholderText(tr("Message (Enter sends, Shift+Enter for a new line)"));
    m_input->setAccessibleName(tr("Message input"));
    m_input->setMaximumHeight(120);
    inputRow->addWidget(m_input, 1);
    m_sendButton = new QPushButton(tr("Send"), area);
    m_sendButton->setObjectName(QStringLiteral("sendButton"));
    m_sendButton->setAccessibleName(tr("Send message"));
    m_sendButton->setEnabled(false);  // enabled once a model is loaded (chat window issue)
    inputRow->addWidget(m_sendButton);
    layout->addLayout(inputRow);
    return area;
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* newChat = file->addAction(tr("&New chat"));
    newChat->setShortcut(QKeySequence::New);
    connect(newChat, &QAction::triggered, m_newChatButton, &QPushButton::click);
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"));
    quit->setShortcut(QKeySequence::Quit);
    connect(quit, &QAction::triggered, this, &QWidget::close);

    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    QAction* find = edit->addAction(tr("&Search conversations"));
    find->setShortcut(QKeySequence::Find);
    connect(find, &QAction::triggered, this, [this] {
        m_searchBox->setFocus();
        m_searchBox->selectAll();
    });
}

void MainWindow::buildStatusBar() {
    m_modelLabel = new QLabel(tr("No model loaded"), this);
    m_modelLabel->setObjectName(QStringLiteral("modelLabel"));
    m_backendLabel = new QLabel(this);
    m_backendLabel->setObjectName(QStringLiteral("backendLabel"));
    m_speedLabel = new QLabel(this);
    m_speedLabel->setObjectName(QStringLiteral("speedLabel"));
    statusBar()->addWidget(m_modelLabel, 1);
    statusBar()->addPermanentWidget(m_speedLabel);
    statusBar()->addPermanentWidget(m_backendLabel);
}

void MainWindow::setBackendDescription(const QString& text) { m_backendLabel->setText(text); }

void MainWindow::restoreWindowState() {
    QSettings settings;
    if (settings.contains(QStringLiteral("window/geometry"))) {
        restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray());
        restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
        m_splitter->restoreState(settings.value(QStringLiteral("window/splitter")).toByteArray());
    }
}

void MainWindow::saveWindowState() {
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    settings.setValue(QStringLiteral("window/splitter"), m_splitter->saveState());
}

void MainWindow::closeEvent(QCloseEvent* event) {
    saveWindowState();
    event->accept();
}

}  // namespace dsv2::ui
