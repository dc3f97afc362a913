// The JSON export: full fidelity, versioned, deterministic (export -> import -> export is identical
// byte for byte). Conversation fields one per line, each message one compact line, so that the file
// stays readable and diffable without its token tables exploding into one number per line.
#include "export_writers.h"
#include "json_codec.h"
#include "store_internal.h"

#include <fmt/format.h>

#include <ostream>
#include <unordered_map>

namespace dsv2::storage::detail {

namespace {

std::string dump(const OrderedJson& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class JsonWriter final : public ExportWriter {
public:
    void begin(std::ostream& out, const std::vector<Conversation>& /*all*/) override {
        out << "{\n  \"format\": \"" << kExchangeFormat << "\",\n  \"version\": " << kExchangeVersion
            << ",\n  \"conversations\": [";
        m_first = true;
    }

    void conversation(std::ostream& out, const ExportItem& item, std::size_t /*index*/) override {
        const Conversation& c = item.conversation;
        // Messages are numbered 1..n in creation order; parents come first, so ids are stable
        // across databases (row ids are not).
        std::unordered_map<MessageId, std::int64_t> ordinal;
        for (std::size_t i = 0; i < item.messages.size(); ++i) ordinal.emplace(item.messages[i].id, i + 1);
        auto ref = [&](std::optional<MessageId> id) -> OrderedJson {
            if (!id) return nullptr;
            const auto it = ordinal.find(*id);
            return it == ordinal.end() ? OrderedJson(nullptr) : OrderedJson(it->second);
        };

        const std::pair<const char*, OrderedJson> fields[] = {
            {"uuid", c.uuid},
            {"title", textToJson(c.meta.title)},
            {"createdAt", c.createdAt},
            {"updatedAt", c.updatedAt},
            {"modelDir", textToJson(c.meta.modelDir)},
            {"modelName", textToJson(c.meta.modelName)},
            {"systemPrompt", textToJson(c.meta.systemPrompt)},
            {"sampling", OrderedJson(c.meta.sampling)},
            {"settings", OrderedJson(c.meta.settings)},
            {"activeRoot", ref(c.activeRootId)},
        };
        out << (m_first ? "\n" : ",\n") << "    {\n";
        m_first = false;
        for (const auto& [key, value] : fields) out << "      \"" << key << "\": " << dump(value) << ",\n";
        out << "      \"messages\": [";
        bool firstMessage = true;
        for (const Message& m : item.messages) {
            OrderedJson j;
            j["id"] = ordinal.at(m.id);
            j["parent"] = ref(m.parentId);
            j["activeChild"] = ref(m.activeChildId);
            j["role"] = roleName(m.role);
            j["status"] = messageStatusName(m.status);
            j["createdAt"] = m.createdAt;
            j["updatedAt"] = m.updatedAt;
            j["content"] = textToJson(m.content);
            if (!m.errorText.empty()) j["errorText"] = textToJson(m.errorText);
            if (m.stats) j["stats"] = statsToJson(*m.stats);
            if (m.tokenCount > 0) {
                OrderedJson tokens = OrderedJson::array();
                for (const auto& t : loadTokens(*item.db, m.id)) tokens.push_back(tokenToJson(t));
                j["tokens"] = std::move(tokens);
            }
            if (m.role == Role::Assistant) {
                if (auto prompt = loadPromptRouting(*item.db, m.id)) j["promptRouting"] = promptRoutingToJson(*prompt);
            }
            out << (firstMessage ? "\n" : ",\n") << "        " << dump(j);
            firstMessage = false;
        }
        out << (firstMessage ? "]\n" : "\n      ]\n") << "    }";
    }

    void end(std::ostream& out) override { out << (m_first ? "]\n}\n" : "\n  ]\n}\n"); }

private:
    bool m_first = true;
};

}  // namespace

std::unique_ptr<ExportWriter> makeJsonWriter() { return std::make_unique<JsonWriter>(); }

}  // namespace dsv2::storage::detail
