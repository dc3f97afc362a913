#pragma once
// The servers a person has connected to (Model → Servers), kept in the app's QSettings, most
// recently used first. The API key is stored with its server in the settings file (readable by
// the user only, like the rest of ~/.config): the same trust as an OpenAI client's env file.

#include <QString>
#include <QVector>

#include <optional>

#include "backend/chat_types.h"

namespace dsv2::ui {

inline constexpr int kMaxSavedServers = 8;

QVector<ServerEntry> savedServers();
// Puts `server` first (replacing an entry with the same URL and model), keeps kMaxSavedServers.
void rememberServer(const ServerEntry& server);
void forgetServers();

// The server to reconnect to at start: the last thing loaded was this server (cleared when a
// local model is loaded).
std::optional<ServerEntry> lastServer();
void setLastServer(const std::optional<ServerEntry>& server);

// What the person typed as a server URL, made into an API base: a scheme (http:// when none),
// no trailing slash, "/v1" when there is no path ("localhost:8000" -> "http://localhost:8000/v1").
// Empty, with `error` set, when it cannot be a URL.
QString normalizeServerUrl(const QString& typed, QString* error);

// "tiny-lite on 127.0.0.1:8000" for menus and the window.
QString serverLabel(const ServerEntry& server);

}  // namespace dsv2::ui
