#pragma once
// The main window: conversation sidebar on the left, chat area with the input box on the right,
// status bar at the bottom. Later issues fill in the views; this class only assembles them.

#include <QMainWindow>

class QLabel;
class QLineEdit;
class QListView;
class QPlainTextEdit;
class QPushButton;
class QSplitter;
class QStackedWidget;

namespace dsv2::ui {

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Shown in the status bar: "CPU", "CUDA: NVIDIA H200", ...
    void setBackendDescription(const QString& text);

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    QWidget* buildSidebar();
    QWidget* buildChatArea();
    void buildStatusBar();
    void buildMenus();
    void restoreWindowState();
    void saveWindowState();

    QSplitter* m_splitter = nullptr;
    QLineEdit* m_searchBox = nullptr;
    QPushButton* m_newChatButton = nullptr;
    QListView* m_conversationList = nullptr;
    QStackedWidget* m_chatStack = nullptr;
    QPlainTextEdit* m_input = nullptr;
    QPushButton* m_sendButton = nullptr;
    QLabel* m_modelLabel = nullptr;
    QLabel* m_backendLabel = nullptr;
    QLabel* m_speedLabel = nullptr;
};

}  // namespace dsv2::ui
