#pragma once
// ChatView: the message list. A QListView over MessageModel painted by MessageDelegate, scrolled by
// pixel. It follows the newest text while the user is at the bottom and stops following as soon as
// they scroll up (a "Jump to latest" button brings them back). Copy actions are handled here; the
// others (edit, regenerate, branch switch) are passed on as messageAction.

#include <QListView>

#include "chat/message_delegate.h"

class QToolButton;

namespace dsv2::ui {

class MessageModel;

class ChatView : public QListView {
    Q_OBJECT
public:
    explicit ChatView(QWidget* parent = nullptr);

    void setMessageModel(MessageModel* model);
    MessageModel* messageModel() const { return m_model; }
    MessageDelegate* messageDelegate() const { return m_delegate; }

    bool isFollowing() const { return m_follow; }
    void setFollowing(bool follow);          // true also scrolls to the bottom
    void scrollToMessage(qint64 messageId);  // selects it and stops following
    bool isAtBottom() const;

Q_SIGNALS:
    void messageAction(qint64 messageId, dsv2::ui::MessageDelegate::Action action);
    void copied(const QString& what);  // for a short status message

protected:
    void resizeEvent(QResizeEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void leaveEvent(QEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;
    void changeEvent(QEvent* event) override;

private:
    void onAction(const QModelIndex& index, MessageDelegate::Action action, int codeBlock);
    void onRangeChanged(int min, int max);
    void updateFollowFromUser();
    void placeJumpButton();
    void remeasure(const QModelIndex& first, const QModelIndex& last);

    MessageModel* m_model = nullptr;
    MessageDelegate* m_delegate = nullptr;
    QToolButton* m_jumpButton = nullptr;
    bool m_follow = true;
    QPersistentModelIndex m_hoverIndex;
};

}  // namespace dsv2::ui
