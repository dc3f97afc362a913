// dsv2 tokenize --tokenizer PATH (--text STR | --batch FILE.json | --chat FILE.json)
// PATH is a tokenizer.json or a model folder (then PATH/tokenizer.json, and for --chat
// PATH/tokenizer_config.json). No bos/eos is added; special-token text stays plain text unless
// --special is given.
//   --text:  the ids on one line, space-separated; --pieces lists each token's bytes instead.
//   --batch: a JSON array of strings in, a JSON array of id arrays out.
//   --chat:  a JSON array of {"role", "content"} rendered with the folder's chat template: the
//            prompt text, then its ids (control tokens only from the template).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dsv2::cli {
namespace {

namespace fs = std::filesystem;

struct TokenizeArgs {
    std::string tokenizer;
    std::string text;
    std::string batch;
    std::string chat;
    bool pieces = false;
    bool special = false;
    bool addGenerationPrompt = true;
};

// Bytes shown readably: printable UTF-8 as is, the rest as escapes (a token may hold half a character).
std::string visible(const std::string& bytes) {
    std::string out;
    for (size_t i = 0; i < bytes.size(); ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
        } else {
            // Keep a complete multi-byte character; escape stray or partial bytes.
            const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
            bool complete = len > 0 && i + len <= bytes.size();
            for (size_t k = 1; complete && k < len; ++k) complete = (static_cast<unsigned char>(bytes[i + k]) & 0xC0) == 0x80;
            if (complete) {
                out.append(bytes, i, len);
                i += len - 1;
            } else {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\x%02X", c);
                out += buf;
            }
        }
    }
    return out;
}

Result<std::string> readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status(StatusCode::NotFound, path + ": cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

Result<nlohmann::json> readJsonArray(const std::string& path) {
    DSV2_ASSIGN_OR_RETURN(std::string text, readFile(path));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        return Status(StatusCode::InvalidData, path + ": not valid JSON: " + e.what());
    }
    if (!j.is_array()) return Status(StatusCode::InvalidData, path + ": expected a JSON array");
    return j;
}

void printIds(const std::vector<int32_t>& ids) {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (i) line += ' ';
        line += std::to_string(ids[i]);
    }
    std::cout << line << '\n';
}

void printPieces(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
    for (size_t i = 0; i < ids.size(); ++i) {
        std::cout << i << '\t' << ids[i] << '\t' << (tokenizer.isSpecial(ids[i]) ? "special\t" : "\t") << '"'
                  << visible(tokenizer.tokenBytes(ids[i])) << "\"\n";
    }
}

int runTokenize(const TokenizeArgs& args) {
    const int modes = !args.text.empty() + !args.batch.empty() + !args.chat.empty();
    if (modes != 1) return fail("give exactly one of --text, --batch, --chat");
    std::error_code ec;
    const fs::path path(args.tokenizer);
    const bool isFolder = fs::is_directory(path, ec);
    const fs::path tokenizerJson = isFolder ? path / "tokenizer.json" : path;
    auto tokenizer = Tokenizer::fromFile(tokenizerJson);
    if (!tokenizer) return fail(tokenizer.status().toString());
    const SpecialTokens special = args.special ? SpecialTokens::Allow : SpecialTokens::AsText;

    if (!args.text.empty()) {
        const auto ids = (*tokenizer)->encode(args.text, special);
        if (args.pieces) {
            printPieces(**tokenizer, ids);
        } else {
            printIds(ids);
        }
        return 0;
    }
    if (!args.batch.empty()) {
        auto list = readJsonArray(args.batch);
        if (!list) return fail(list.status().toString());
        nlohmann::json out = nlohmann::json::array();
        for (size_t i = 0; i < list->size(); ++i) {
            const auto& item = (*list)[i];
            if (!item.is_string()) return fail(args.batch + ": item " + std::to_string(i) + " is not a string");
            out.push_back((*tokenizer)->encode(item.get_ref<const std::string&>(), special));
        }
        std::cout << out.dump() << '\n';
        return 0;
    }
    // --chat
    if (!isFolder) return fail("--chat needs a model folder (for its tokenizer_config.json), not a file");
    auto chatTemplate = ChatTemplate::fromTokenizerConfig(path / "tokenizer_config.json");
    if (!chatTemplate) return fail(chatTemplate.status().toString());
    auto list = readJsonArray(args.chat);
    if (!list) return fail(list.status().toString());
    std::vector<ChatMessage> messages;
    for (size_t i = 0; i < list->size(); ++i) {
        const auto& m = (*list)[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string()) {
            return fail(args.chat + ": message " + std::to_string(i) + " needs string \"role\" and \"content\"");
        }
        messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    auto text = chatTemplate->render(messages, args.addGenerationPrompt);
    if (!text) return fail(text.status().toString());
    auto ids = chatTemplate->renderTokens(messages, args.addGenerationPrompt, **tokenizer);
    if (!ids) return fail(ids.status().toString());
    std::cout << *text << '\n';
    if (args.pieces) {
        printPieces(**tokenizer, *ids);
    } else {
        printIds(*ids);
    }
    return 0;
}

void installTokenize(CLI::App& root, CliContext& ctx) {
    auto* cmd = root.add_subcommand("tokenize", "Encode text with a model's tokenizer (no bos/eos added)");
    auto args = std::make_shared<TokenizeArgs>();
    cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json, or a model folder holding one")->required();
    cmd->add_option("--text", args->text, "Text to encode; prints the ids");
    cmd->add_option("--batch", args->batch, "JSON array of strings; prints a JSON array of id arrays");
    cmd->add_option("--chat", args->chat,
                    "JSON array of {role, content}: render with the folder's chat template, print prompt and ids");
    cmd->add_flag("--pieces,--verbose-tokens", args->pieces, "With --text/--chat: one line per token with its bytes");
    cmd->add_flag("--special", args->special,
                  "Match special-token text (e.g. <｜end▁of▁sentence｜>) in --text/--batch input, as HF does");
    cmd->add_flag("!--no-generation-prompt", args->addGenerationPrompt, "With --chat: do not end with the assistant prompt");
    cmd->callback([args, &ctx] { ctx.exitCode = runTokenize(*args); });
}

}  // namespace

DSV2_CLI_COMMAND(30, installTokenize);

}  // namespace dsv2::cli
