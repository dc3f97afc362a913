// Markdown and plain-text exports: the active branch of each conversation, for reading and sharing.
// Message text is Markdown already, so it goes out verbatim (code blocks intact); a fence left open
// by an interrupted answer is closed so that it cannot swallow the rest of the file.
#include "export_writers.h"

#include "dsv2/storage/types.h"

#include <fmt/format.h>

#include <ostream>
#include <sstream>

namespace dsv2::storage::detail {

namespace {

// True when `text` ends inside a ``` or ~~~ code block.
bool endsInsideFence(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    std::string open;  // the fence that opened the current block
    while (std::getline(lines, line)) {
        const auto start = line.find_first_not_of(' ');
        if (start == std::string::npos || start > 3) continue;
        const std::string_view rest = std::string_view(line).substr(start);
        for (const char* fence : {"```", "~~~"}) {
            if (rest.substr(0, 3) != fence) continue;
            if (open.empty()) {
                open = fence;
            } else if (open == fence) {
                open.clear();
            }
        }
    }
    return !open.empty();
}

std::string statusNote(const Message& m) {
    switch (m.status) {
    case MessageStatus::Interrupted: return "(interrupted: the answer was cut off)";
    case MessageStatus::Streaming: return "(still being written)";
    case MessageStatus::Error: return m.errorText.empty() ? "(failed)" : "(failed: " + m.errorText + ")";
    case MessageStatus::Complete: return {};
    }
    return {};
}

class MarkdownWriter final : public ExportWriter {
public:
    void begin(std::ostream&, const std::vector<Conversation>&) override {}

    void conversation(std::ostream& out, const ExportItem& item, std::size_t index) override {
        const Conversation& c = item.conversation;
        if (index > 0) out << "\n---\n\n";
        out << "# " << displayTitle(c) << "\n\n";
        if (!c.meta.modelName.empty() || !c.meta.modelDir.empty()) {
            out << "- Model: " << (c.meta.modelName.empty() ? c.meta.modelDir : c.meta.modelName);
            if (!c.meta.modelDir.empty() && !c.meta.modelName.empty()) out << " (`" << c.meta.modelDir << "`)";
            out << "\n";
        }
        out << "- Created: " << formatLocalTime(c.createdAt) << ", updated: " << formatLocalTime(c.updatedAt) << "\n";
        const int branches = branchPoints(item.messages);
        out << "- Messages: " << item.path.size() << " shown";
        if (item.messages.size() > item.path.size()) {
            out << " of " << item.messages.size() << " (" << branches
                << " edited or regenerated turns; the JSON export keeps every version)";
        }
        out << "\n\n";
        if (!c.meta.systemPrompt.empty()) {
            out << "> **System prompt**\n>\n";
            std::istringstream lines(c.meta.systemPrompt);
            std::string line;
            while (std::getline(lines, line)) out << (line.empty() ? ">" : "> " + line) << "\n";
            out << "\n";
        }
        for (const Message& m : item.path) {
            out << "## " << roleLabel(m.role) << " · " << formatLocalTime(m.createdAt) << "\n\n";
            out << m.content;
            if (!m.content.empty() && m.content.back() != '\n') out << "\n";
            if (endsInsideFence(m.content)) out << "```\n";
            out << "\n";
            const std::string note = statusNote(m);
            if (m.stats || !note.empty()) {
                out << "*";
                if (m.stats) out << statsLine(*m.stats);
                if (m.stats && !note.empty()) out << " · ";
                out << note << "*\n\n";
            }
        }
    }

    void end(std::ostream&) override {}
};

class TextWriter final : public ExportWriter {
public:
    void begin(std::ostream&, const std::vector<Conversation>&) override {}

    void conversation(std::ostream& out, const ExportItem& item, std::size_t index) override {
        const Conversation& c = item.conversation;
        if (index > 0) out << "\n" << std::string(72, '=') << "\n\n";
        out << displayTitle(c) << "\n";
        if (!c.meta.modelName.empty() || !c.meta.modelDir.empty()) {
            out << "Model: " << (c.meta.modelName.empty() ? c.meta.modelDir : c.meta.modelName) << "\n";
        }
        out << "Created: " << formatLocalTime(c.createdAt) << "\n\n";
        if (!c.meta.systemPrompt.empty()) out << "[System prompt]\n" << c.meta.systemPrompt << "\n\n";
        for (const Message& m : item.path) {
            out << "[" << roleLabel(m.role) << " · " << formatLocalTime(m.createdAt) << "]\n";
            out << m.content;
            if (!m.content.empty() && m.content.back() != '\n') out << "\n";
            const std::string note = statusNote(m);
            if (m.stats) out << "(" << statsLine(*m.stats) << ")\n";
            if (!note.empty()) out << note << "\n";
            out << "\n";
        }
    }

    void end(std::ostream&) override {}
};

}  // namespace

std::unique_ptr<ExportWriter> makeMarkdownWriter() { return std::make_unique<MarkdownWriter>(); }
std::unique_ptr<ExportWriter> makeTextWriter() { return std::make_unique<TextWriter>(); }

}  // namespace dsv2::storage::detail
