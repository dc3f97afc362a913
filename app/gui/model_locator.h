#pragma once
// Which model folder dsv2-chat opens when nobody says: `--model DIR`, else the last one used, else
// the demo model (installed, then the source tree's), else the tiny-lite test fixture. And which
// models are toys that the window should say plainly are not the real thing.

#include <QString>
#include <QStringList>

namespace dsv2::gui {

struct ModelChoice {
    QString dir;     // empty: nothing usable was found
    QString source;  // "command line", "last used", "demo model", "test model" (for the log)
};

// True when `dir` looks like a model folder (has config.json).
bool isModelFolder(const QString& dir);

// The candidates in order; `commandLine` and `lastUsed` may be empty. A --model that does not exist
// is still returned (the load then fails with a message that names it), a stale lastUsed is skipped.
ModelChoice resolveDefaultModel(const QString& commandLine, const QString& lastUsed);

// The built-in fallbacks, in preference order: installed demo model, source-tree demo model, tiny-lite.
QStringList builtInModelDirs();

// Empty for a real model; otherwise one or two sentences saying what this model is and how to load a
// real one. Decided by the folder (demo model, tiny-lite) and by size (under 100 M parameters).
QString toyNote(const QString& dir, qint64 parametersTotal);

}  // namespace dsv2::gui
