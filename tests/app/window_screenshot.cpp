// Not a test: renders docs/images/chat-window-inspector-{light,dark}.png, the main window with the
// inspector docked beside a stored demo-model answer (its heatmap, and the tokens routed to one
// expert coloured in the chat). dsv2-chat's own --screenshot cannot open the dock; this drives the
// same window and adapter, then grabs it. Run under Xvfb as the other window screenshots are:
//   ninja window_screenshot
//   xvfb-run -a -s "-screen 0 1600x900x24" tests/app/window_screenshot --theme light
//       --model ../resources/demo-model --out ../docs/images/chat-window-inspector-light.png
//   (one command line)
#include <QApplication>
#include <QCommandLineParser>
#include <QItemSelectionModel>
#include <QSettings>
#include <QTemporaryDir>
#include <QTimer>

#include <cstdio>

#include "app_theme.h"
#include "backend/chat_backend.h"
#include "chat/chat_controller.h"
#include "chat/chat_panel.h"
#include "chat/chat_view.h"
#include "chat/message_model.h"
#include "chat_service.h"
#include "inspect/inspection_model.h"
#include "inspect/inspector_panel.h"
#include "inspector_dock.h"
#include "main_window.h"

using namespace dsv2;

namespace {

// The expert of the first MoE layer that most answer tokens went to: its tokens get coloured.
ui::ExpertSelection busiestExpert(const inspect::RoutingTable& t) {
    std::vector<int> count(static_cast<std::size_t>(std::max(1, t.experts > 0 ? t.experts : 256)), 0);
    ui::ExpertSelection best{0, -1};
    int bestCount = 0;
    for (int row = 0; row < t.tokenCount(); ++row) {
        if (t.rows[static_cast<std::size_t>(row)].isPrompt) continue;
        const int e = t.top1(row, 0);
        if (e < 0 || e >= static_cast<int>(count.size())) continue;
        if (++count[static_cast<std::size_t>(e)] > bestCount) {
            bestCount = count[static_cast<std::size_t>(e)];
            best.expert = e;
        }
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QCommandLineParser parser;
    const QCommandLineOption model(QStringLiteral("model"), QStringLiteral("Model folder."), QStringLiteral("DIR"));
    const QCommandLineOption theme(QStringLiteral("theme"), QStringLiteral("light or dark."), QStringLiteral("NAME"),
                                   QStringLiteral("light"));
    const QCommandLineOption out(QStringLiteral("out"), QStringLiteral("PNG to write."), QStringLiteral("FILE"));
    const QCommandLineOption prompt(QStringLiteral("prompt"), QStringLiteral("A prompt (repeatable)."),
                                    QStringLiteral("TEXT"));
    parser.addOptions({model, theme, out, prompt});
    parser.process(app);
    if (!parser.isSet(model) || !parser.isSet(out)) {
        std::fprintf(stderr, "window_screenshot: --model DIR and --out FILE are needed\n");
        return 2;
    }
    QStringList prompts = parser.values(prompt);
    if (prompts.isEmpty())
        prompts = {QStringLiteral("Hello! What can you do?"), QStringLiteral("Tell me a short story about a cat.")};

    // Settings and history in a temporary folder: nothing of the person's own is read or changed.
    QTemporaryDir dir;
    QCoreApplication::setOrganizationName(QStringLiteral("dsv2-chat-screenshot"));
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, dir.path());
    ui::applyTheme(ui::themeFromName(parser.value(theme)));

    gui::ChatService service(1);
    ui::MainWindow window(&service);
    window.resize(1500, 820);
    window.show();
    ui::InspectorDock* dock = window.inspectorDock();
    dock->show();
    window.resizeDocks({dock}, {680}, Qt::Horizontal);

    int next = 0;
    qint64 lastAnswer = 0;
    bool answered = false;  // every prompt answered: the next stored table of lastAnswer is the shot
    auto sendNext = [&] {
        if (next < prompts.size()) {
            window.controller()->send(prompts[next++]);
            return;
        }
        // Every prompt answered: select the last answer; the dock reads its stored routing.
        answered = true;
        const int row = window.messageModel()->rowOf(lastAnswer);
        window.chatPanel()->view()->selectionModel()->setCurrentIndex(window.messageModel()->index(row),
                                                                      QItemSelectionModel::ClearAndSelect);
        dock->inspectMessage(lastAnswer);
    };
    QObject::connect(&service, &ui::ChatBackend::modelLoaded, &app, [&] { sendNext(); });
    QObject::connect(&service, &ui::ChatBackend::modelLoadFailed, &app, [&](const QString&, const QString& why) {
        std::fprintf(stderr, "window_screenshot: %s\n", qPrintable(why));
        QApplication::exit(1);
    });
    QObject::connect(&service, &ui::ChatBackend::generationFinished, &app, [&](const ui::GenerationOutcome& o) {
        lastAnswer = o.messageId;
        QTimer::singleShot(100, &app, sendNext);
    });
    QObject::connect(dock, &ui::InspectorDock::routingShown, &app, [&](qint64 messageId) {
        if (!answered || messageId != lastAnswer) return;
        ui::InspectionModel* m = dock->panel()->model();
        m->setSelectedExpert(busiestExpert(m->table()));
        // An answer token selected too: the token inspector shows its alternatives.
        const int firstAnswerRow = m->table().promptTokenCount();
        if (m->table().tokenCount() > firstAnswerRow + 2) m->setSelectedToken(firstAnswerRow + 2);
        QTimer::singleShot(600, &app, [&] {
            const bool saved = window.grab().save(parser.value(out), "PNG");
            std::fprintf(stderr, "window_screenshot: %s %s\n", saved ? "wrote" : "could not write",
                         qPrintable(parser.value(out)));
            QApplication::exit(saved ? 0 : 1);
        });
    });
    service.openHistory(dir.filePath(QStringLiteral("history.sqlite")));
    window.loadModel(parser.value(model));
    return QApplication::exec();
}
