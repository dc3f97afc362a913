#pragma once
// One writer per export format. The exporter loads conversations one at a time and hands them over,
// so exporting everything does not hold the whole history in memory (JSON tokens included).

#include "dsv2/storage/types.h"
#include "sqlite_db.h"

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace dsv2::storage {
enum class ExportFormat;
}

namespace dsv2::storage::detail {

struct ExportItem {
    Conversation conversation;
    std::vector<Message> messages;  // the whole tree, creation order
    std::vector<Message> path;      // the active branch, root to leaf
    Database* db = nullptr;         // for token records (JSON only)
};

class ExportWriter {
public:
    virtual ~ExportWriter() = default;
    // titles: of every conversation that will follow (for a table of contents).
    virtual void begin(std::ostream& out, const std::vector<Conversation>& all) = 0;
    virtual void conversation(std::ostream& out, const ExportItem& item, std::size_t index) = 0;
    virtual void end(std::ostream& out) = 0;
};

std::unique_ptr<ExportWriter> makeJsonWriter();
std::unique_ptr<ExportWriter> makeMarkdownWriter();
std::unique_ptr<ExportWriter> makeTextWriter();
std::unique_ptr<ExportWriter> makeHtmlWriter();

// Shared wording for the human formats.
std::string formatLocalTime(TimestampMs ms);
std::string displayTitle(const Conversation& conversation);
std::string roleLabel(Role role);
// "512 tokens · 23.4 tok/s · first token 120 ms · stop: eos · cuda"
std::string statsLine(const GenerationStats& stats);
int branchPoints(const std::vector<Message>& messages);  // messages with more than one child (or roots)

}  // namespace dsv2::storage::detail
