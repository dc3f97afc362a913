// Renders the inspection views to PNG for docs/inspection.md (not a test):
//   inspect_screenshots OUT_DIR
// Light and dark: the Routing, Load and KV cache tabs over the Lite-shaped fixture (26 MoE layers,
// top-6 of 64), and the Routing tab over a real tiny-lite answer (the engine on the CPU backend,
// prompt routing included). Run offscreen: QT_QPA_PLATFORM=offscreen.
#include <QApplication>
#include <QDir>
#include <QScrollBar>
#include <QSplitter>
#include <QTabWidget>
#include <QThread>

#include <cstdio>

#include "app_theme.h"
#include "dsv2/engine.h"
#include "inspect/engine_routing.h"
#include "inspect/inspector_panel.h"
#include "inspect/kv_cache_view.h"
#include "inspect/routing_heatmap.h"
#include "inspect/token_text_view.h"
#include "inspect_fixtures.h"

using namespace dsv2;
using namespace dsv2::ui;

namespace {

void settle() {
    for (int i = 0; i < 5; ++i) {
        QApplication::processEvents();
        QThread::msleep(20);
    }
}

bool save(QWidget& w, const QString& path) {
    settle();
    const bool ok = w.grab().save(path, "PNG");
    std::printf("%s %s\n", ok ? "wrote" : "FAILED", qPrintable(path));
    return ok;
}

// A real answer from tiny-lite, prompt included, as the chat adapter would feed it.
bool fillFromTinyLite(InspectorPanel& panel) {
    EngineOptions options;
    options.backend = BackendChoice::Cpu;
    auto loaded = Engine::load(DSV2_TEST_DATA_DIR "/tiny-lite", options);
    if (!loaded.isOk()) return false;
    auto engine = std::move(loaded).value();
    auto session = std::move(engine->createSession()).value();
    GenerateRequest request;
    request.messages = {{"user", "Which experts read this?"}};
    request.params.maxNewTokens = 48;
    request.params.ignoreEos = true;
    request.params.topNAlternatives = 5;
    request.params.wantPromptRouting = true;
    request.params.temperature = 0.8;
    request.params.seed = 3;
    const auto prompt = *engine->renderChat(request.messages, true);
    const inspect::RoutingTable shape = inspect::liveTable(engine->info(), 3);
    panel.model()->beginLive(3, shape.layers, shape.topK, shape.experts, shape.modelLayers);
    auto result = session->generate(request, [&](const GenerateEvent& e) {
        if (const auto* p = std::get_if<PromptProcessedEvent>(&e)) {
            panel.model()->appendRows(inspect::promptRows(*p, prompt, *engine));
        } else if (const auto* t = std::get_if<TokenEvent>(&e)) {
            panel.model()->appendRows({inspect::tokenRow(*t)});
            panel.setCacheState(inspect::cacheState(t->cache));
        }
    });
    panel.model()->finishLive();
    QString error;
    if (auto shapeFromConfig =
            modelShapeFromConfig(QStringLiteral(DSV2_TEST_DATA_DIR "/tiny-lite/config.json"), &error)) {
        panel.setModelShape(*shapeFromConfig);
    }
    return result.isOk();
}

}  // namespace

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    if (argc < 2) {
        std::fprintf(stderr, "usage: inspect_screenshots OUT_DIR\n");
        return 2;
    }
    const QDir out(QString::fromLocal8Bit(argv[1]));
    bool ok = true;
    for (const Theme theme : {Theme::Light, Theme::Dark}) {
        applyTheme(theme);
        const QString suffix = theme == Theme::Light ? QStringLiteral("light") : QStringLiteral("dark");
        InspectorPanel panel;
        panel.resize(1180, 660);
        inspect::RoutingTable table = inspect::test::liteTable(18, 150, 5);
        table.messageId = 12;
        panel.model()->setTable(table);
        std::vector<inspect::RoutingTable> conversation = {table, inspect::test::liteTable(22, 200, 9)};
        conversation[1].messageId = 10;
        panel.model()->setConversationTables(conversation);
        panel.setModelShape(ModelShape::deepSeekV2Lite());
        panel.setCacheState(CacheState::estimate(1650, 32768, 62208));
        panel.show();
        // An expert selected (its tokens lit in the text) and a token chosen for the inspector.
        panel.model()->setSelectedExpert({5, table.top1(40, 5)});
        panel.model()->setSelectedToken(40);
        panel.heatmap()->verticalScrollBar()->setValue(12 * panel.heatmap()->rowHeight());
        panel.tabs()->setCurrentIndex(0);
        ok &= save(panel, out.filePath(QStringLiteral("inspect-routing-%1.png").arg(suffix)));
        panel.tabs()->setCurrentIndex(1);
        panel.model()->setSelectedExpert({});
        ok &= save(panel, out.filePath(QStringLiteral("inspect-load-%1.png").arg(suffix)));
        panel.tabs()->setCurrentIndex(2);
        ok &= save(panel, out.filePath(QStringLiteral("inspect-kv-cache-%1.png").arg(suffix)));
        // Gate weights in the heatmap, confidence in the text.
        panel.setHeatmapColorMode(int(RoutingHeatmap::ColorMode::GateWeight));
        panel.setTextColoring(int(TokenTextView::Coloring::Confidence));
        panel.tabs()->setCurrentIndex(0);
        ok &= save(panel, out.filePath(QStringLiteral("inspect-confidence-%1.png").arg(suffix)));

        InspectorPanel real;
        real.resize(1000, 560);
        real.show();
        ok &= fillFromTinyLite(real);
        real.model()->setSelectedToken(real.model()->table().promptTokenCount() + 3);
        real.setTextColoring(int(TokenTextView::Coloring::ExpertAtLayer));  // the Mixtral paper's view
        real.tabs()->setCurrentIndex(0);
        ok &= save(real, out.filePath(QStringLiteral("inspect-tiny-lite-%1.png").arg(suffix)));
    }
    return ok ? 0 : 1;
}
