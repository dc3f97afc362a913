// A self-contained HTML page (inline CSS, no scripts, no external resources). Everything from the
// database is escaped; fenced code blocks become <pre><code>, other text keeps its line breaks.
#include "export_writers.h"

#include <fmt/format.h>

#include <ostream>
#include <sstream>

namespace dsv2::storage::detail {

namespace {

std::string escapeHtml(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

// Code fences become <pre><code>; paragraphs are separated by blank lines, lines by <br>.
std::string renderContent(const std::string& text) {
    std::ostringstream html;
    std::istringstream lines(text);
    std::string line;
    bool inCode = false;
    std::string fence;
    std::string paragraph;
    auto flushParagraph = [&] {
        if (!paragraph.empty()) html << "<p>" << paragraph << "</p>\n";
        paragraph.clear();
    };
    while (std::getline(lines, line)) {
        const auto start = line.find_first_not_of(' ');
        const std::string_view rest =
            start == std::string::npos ? std::string_view() : std::string_view(line).substr(start);
        const bool isFence = start != std::string::npos && start <= 3 &&
                             (rest.substr(0, 3) == "```" || rest.substr(0, 3) == "~~~");
        if (isFence && !inCode) {
            flushParagraph();
            inCode = true;
            fence = std::string(rest.substr(0, 3));
            std::string language(rest.substr(3));
            language.erase(0, language.find_first_not_of(" \t"));
            language = language.substr(0, language.find_first_of(" \t"));
            html << "<pre><code" << (language.empty() ? "" : " class=\"language-" + escapeHtml(language) + "\"")
                 << ">";
            continue;
        }
        if (isFence && inCode && rest.substr(0, 3) == fence) {
            html << "</code></pre>\n";
            inCode = false;
            continue;
        }
        if (inCode) {
            html << escapeHtml(line) << "\n";
        } else if (line.find_first_not_of(" \t\r") == std::string::npos) {
            flushParagraph();
        } else {
            paragraph += (paragraph.empty() ? "" : "<br>\n") + escapeHtml(line);
        }
    }
    if (inCode) html << "</code></pre>\n";
    flushParagraph();
    return html.str();
}

constexpr const char* kStyle = R"css(
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fbfbfd; --muted: #6e6e73; --user: #eef3ff; --bot: #f4f4f6;
        --code: #f0f0f3; --border: #d8d8de; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ed; --bg: #1c1c1e; --muted: #a1a1a6; --user: #1f2a44;
        --bot: #2a2a2e; --code: #111114; --border: #3a3a3e; } }
body { margin: 0; background: var(--bg); color: var(--fg); font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 52rem; margin: 0 auto; padding: 2rem 1rem; }
nav ol { padding-left: 1.5rem; } nav a { color: inherit; }
article { margin-bottom: 3rem; } h1 { font-size: 1.6rem; margin-bottom: .25rem; }
.meta { color: var(--muted); font-size: .9rem; margin-top: 0; }
.system { border-left: 3px solid var(--border); padding: .25rem 1rem; color: var(--muted); white-space: pre-wrap; }
section.message { border: 1px solid var(--border); border-radius: 10px; padding: .75rem 1rem; margin: 1rem 0; }
section.user { background: var(--user); } section.assistant, section.system-role { background: var(--bot); }
section.message header { font-weight: 600; font-size: .9rem; color: var(--muted); margin-bottom: .25rem; }
pre { background: var(--code); border: 1px solid var(--border); border-radius: 6px; padding: .75rem; overflow-x: auto; }
code { font: .9em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.stats, .note { color: var(--muted); font-size: .85rem; font-style: italic; }
)css";

class HtmlWriter final : public ExportWriter {
public:
    void begin(std::ostream& out, const std::vector<Conversation>& all) override {
        const std::string title = all.size() == 1 ? displayTitle(all.front()) : "dsv2-chat history";
        out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            << "<meta name=\"generator\" content=\"dsv2-chat\">\n"
            << "<title>" << escapeHtml(title) << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n<main>\n";
        if (all.size() > 1) {
            out << "<nav>\n<h1>dsv2-chat history</h1>\n<ol>\n";
            for (const auto& c : all) {
                out << "<li><a href=\"#c-" << escapeHtml(c.uuid) << "\">" << escapeHtml(displayTitle(c)) << "</a> "
                    << "<span class=\"meta\">" << formatLocalTime(c.createdAt) << "</span></li>\n";
            }
            out << "</ol>\n</nav>\n";
        }
    }

    void conversation(std::ostream& out, const ExportItem& item, std::size_t /*index*/) override {
        const Conversation& c = item.conversation;
        out << "<article id=\"c-" << escapeHtml(c.uuid) << "\">\n<h1>" << escapeHtml(displayTitle(c)) << "</h1>\n";
        out << "<p class=\"meta\">";
        if (!c.meta.modelName.empty()) out << escapeHtml(c.meta.modelName) << " · ";
        out << "created " << formatLocalTime(c.createdAt) << " · updated " << formatLocalTime(c.updatedAt);
        if (item.messages.size() > item.path.size()) {
            out << " · " << item.path.size() << " of " << item.messages.size()
                << " messages shown (other versions are in the JSON export)";
        }
        out << "</p>\n";
        if (!c.meta.systemPrompt.empty()) {
            out << "<div class=\"system\"><strong>System prompt</strong>\n" << escapeHtml(c.meta.systemPrompt)
                << "</div>\n";
        }
        for (const Message& m : item.path) {
            const char* cls = m.role == Role::User ? "user" : m.role == Role::Assistant ? "assistant" : "system-role";
            out << "<section class=\"message " << cls << "\">\n<header>" << roleLabel(m.role) << " · "
                << formatLocalTime(m.createdAt) << "</header>\n"
                << renderContent(m.content);
            if (m.stats) out << "<p class=\"stats\">" << escapeHtml(statsLine(*m.stats)) << "</p>\n";
            if (m.status == MessageStatus::Interrupted) out << "<p class=\"note\">The answer was cut off.</p>\n";
            if (m.status == MessageStatus::Error) {
                out << "<p class=\"note\">Generation failed: " << escapeHtml(m.errorText) << "</p>\n";
            }
            out << "</section>\n";
        }
        out << "</article>\n";
    }

    void end(std::ostream& out) override { out << "</main>\n</body>\n</html>\n"; }
};

}  // namespace

std::unique_ptr<ExportWriter> makeHtmlWriter() { return std::make_unique<HtmlWriter>(); }

}  // namespace dsv2::storage::detail
