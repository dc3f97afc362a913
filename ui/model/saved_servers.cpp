#include "model/saved_servers.h"

#include <QSettings>
#include <QUrl>

namespace dsv2::ui {
namespace {
const QString kServersKey = QStringLiteral("servers/list");
const QString kLastServerKey = QStringLiteral("servers/last");

QVariantMap toMap(const ServerEntry& s) {
    return {{QStringLiteral("url"), s.url}, {QStringLiteral("model"), s.model}, {QStringLiteral("apiKey"), s.apiKey}};
}

ServerEntry fromMap(const QVariantMap& m) {
    return {.url = m.value(QStringLiteral("url")).toString(),
            .model = m.value(QStringLiteral("model")).toString(),
            .apiKey = m.value(QStringLiteral("apiKey")).toString()};
}
}  // namespace

QVector<ServerEntry> savedServers() {
    QVector<ServerEntry> out;
    for (const QVariant& v : QSettings().value(kServersKey).toList()) {
        ServerEntry s = fromMap(v.toMap());
        if (s.isValid()) out.append(s);
    }
    return out;
}

void rememberServer(const ServerEntry& server) {
    QVector<ServerEntry> list = savedServers();
    list.removeIf([&](const ServerEntry& s) { return s.url == server.url && s.model == server.model; });
    list.prepend(server);
    while (list.size() > kMaxSavedServers) list.removeLast();
    QVariantList stored;
    for (const ServerEntry& s : list) stored.append(toMap(s));
    QSettings().setValue(kServersKey, stored);
}

void forgetServers() {
    QSettings settings;
    settings.remove(kServersKey);
    settings.remove(kLastServerKey);
}

std::optional<ServerEntry> lastServer() {
    const ServerEntry s = fromMap(QSettings().value(kLastServerKey).toMap());
    if (!s.isValid()) return std::nullopt;
    return s;
}

void setLastServer(const std::optional<ServerEntry>& server) {
    QSettings settings;
    if (server)
        settings.setValue(kLastServerKey, toMap(*server));
    else
        settings.remove(kLastServerKey);
}

QString normalizeServerUrl(const QString& typed, QString* error) {
    QString text = typed.trimmed();
    if (text.isEmpty()) {
        *error = QObject::tr("Enter the server's address, e.g. http://127.0.0.1:8000/v1.");
        return {};
    }
    if (!text.contains(QStringLiteral("://"))) text.prepend(QStringLiteral("http://"));
    QUrl url(text, QUrl::StrictMode);
    if (!url.isValid() || url.host().isEmpty()) {
        *error = QObject::tr("\"%1\" is not a server address. Write it like http://host:8000/v1.").arg(typed.trimmed());
        return {};
    }
    if (url.scheme() != QLatin1String("http") && url.scheme() != QLatin1String("https")) {
        *error = QObject::tr("Only http:// and https:// servers are supported (not %1://).").arg(url.scheme());
        return {};
    }
    if (!url.query().isEmpty() || !url.fragment().isEmpty()) {
        *error = QObject::tr("Leave the query (?…) and fragment (#…) out of the server address.");
        return {};
    }
    QString path = url.path();
    while (path.endsWith(QLatin1Char('/'))) path.chop(1);
    url.setPath(path.isEmpty() ? QStringLiteral("/v1") : path);
    return url.toString();
}

QString serverLabel(const ServerEntry& server) {
    const QUrl url(server.url);
    const QString where = url.port() > 0 ? url.host() + QLatin1Char(':') + QString::number(url.port()) : url.host();
    return server.model.isEmpty() ? where : QObject::tr("%1 on %2").arg(server.model, where);
}

}  // namespace dsv2::ui
