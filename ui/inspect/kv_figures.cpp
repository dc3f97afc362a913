#include "kv_figures.h"

#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

#include <algorithm>

namespace dsv2::ui {

qint64 ModelShape::mlaBytesPerToken() const { return qint64{layers} * (kvLoraRank + qkRopeHeadDim) * kBf16Bytes; }

qint64 ModelShape::mhaBytesPerToken() const {
    return qint64{layers} * heads * (qkNopeHeadDim + qkRopeHeadDim + vHeadDim) * kBf16Bytes;
}

int ModelShape::gqaGroups() const { return std::min(kGqaGroups, heads); }

qint64 ModelShape::gqaBytesPerToken() const {
    return qint64{layers} * gqaGroups() * (qkNopeHeadDim + qkRopeHeadDim + vHeadDim) * kBf16Bytes;
}

double ModelShape::mhaOverMla() const {
    const qint64 mla = mlaBytesPerToken();
    return mla > 0 ? static_cast<double>(mhaBytesPerToken()) / static_cast<double>(mla) : 0.0;
}

ModelShape ModelShape::deepSeekV2Lite() {
    return {QStringLiteral("DeepSeek-V2-Lite"), 27, 16, 512, 64, 128, 128, 64, 6};
}

ModelShape ModelShape::deepSeekV2() { return {QStringLiteral("DeepSeek-V2"), 60, 128, 512, 64, 128, 128, 160, 6}; }

CacheState CacheState::estimate(qint64 tokens, qint64 capacityTokens, qint64 bytesPerToken) {
    CacheState s;
    s.tokens = tokens;
    s.capacityTokens = capacityTokens;
    s.bytesPerToken = bytesPerToken;
    s.bytesUsed = tokens * bytesPerToken;
    s.blocksUsed = (tokens + kBlockTokens - 1) / kBlockTokens;
    s.blocksCapacity = (capacityTokens + kBlockTokens - 1) / kBlockTokens;
    s.bytesReserved = s.blocksUsed * kBlockTokens * bytesPerToken;
    s.bytesCapacity = s.blocksCapacity * kBlockTokens * bytesPerToken;
    return s;
}

std::optional<ModelShape> modelShapeFromConfig(const QString& configJsonPath, QString* error) {
    const auto failWith = [error](const QString& message) -> std::optional<ModelShape> {
        if (error) *error = message;
        return std::nullopt;
    };
    QFile file(configJsonPath);
    if (!file.open(QIODevice::ReadOnly)) {
        return failWith(
            QCoreApplication::translate("ModelShape", "Cannot read %1: %2").arg(configJsonPath, file.errorString()));
    }
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &parseError);
    if (!doc.isObject()) {
        return failWith(QCoreApplication::translate("ModelShape", "%1 is not a JSON object: %2")
                            .arg(configJsonPath, parseError.errorString()));
    }
    const QJsonObject o = doc.object();
    const char* required[] = {"num_hidden_layers", "num_attention_heads", "kv_lora_rank",
                              "qk_rope_head_dim",  "qk_nope_head_dim",    "v_head_dim"};
    for (const char* key : required) {
        if (!o.value(QLatin1String(key)).isDouble()) {
            return failWith(QCoreApplication::translate("ModelShape", "%1 has no %2: not an MLA (DeepSeek-V2) model")
                                .arg(configJsonPath, QLatin1String(key)));
        }
    }
    ModelShape shape;
    shape.name = QFileInfo(configJsonPath).absoluteDir().dirName();
    shape.layers = o.value(QLatin1String("num_hidden_layers")).toInt();
    shape.heads = o.value(QLatin1String("num_attention_heads")).toInt();
    shape.kvLoraRank = o.value(QLatin1String("kv_lora_rank")).toInt();
    shape.qkRopeHeadDim = o.value(QLatin1String("qk_rope_head_dim")).toInt();
    shape.qkNopeHeadDim = o.value(QLatin1String("qk_nope_head_dim")).toInt();
    shape.vHeadDim = o.value(QLatin1String("v_head_dim")).toInt();
    shape.routedExperts = o.value(QLatin1String("n_routed_experts")).toInt();
    shape.expertsPerToken = o.value(QLatin1String("num_experts_per_tok")).toInt();
    if (!shape.isValid())
        return failWith(QCoreApplication::translate("ModelShape", "%1 has impossible sizes").arg(configJsonPath));
    return shape;
}

}  // namespace dsv2::ui
