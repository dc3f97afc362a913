// Full-text search: FTS5 (bm25 ranking) over message text. Two steps so that snippets are computed
// for the page of hits only, not for every match.
#include "dsv2/storage/conversation_store.h"

#include "connection.h"
#include "store_internal.h"

#include <fmt/format.h>

#include <cctype>

namespace dsv2::storage {

using namespace detail;

namespace detail {

// People type words, not FTS5 syntax: every word becomes a quoted string (so "C++", "don't" or
// "a-b" cannot be syntax errors), "quoted phrases" stay phrases and a trailing * asks for a prefix.
// All terms must match. Returns an empty string when nothing searchable is left.
std::string ftsQueryFromUserText(std::string_view text) {
    auto quote = [](std::string_view term) {
        std::string out = "\"";
        for (char c : term) {
            out += c;
            if (c == '"') out += '"';
        }
        return out + "\"";
    };
    std::vector<std::string> terms;
    std::size_t i = 0;
    while (i < text.size()) {
        if (std::isspace(static_cast<unsigned char>(text[i]))) {
            ++i;
            continue;
        }
        std::string_view term;
        if (text[i] == '"') {
            const auto end = text.find('"', i + 1);
            term = text.substr(i + 1, (end == std::string_view::npos ? text.size() : end) - i - 1);
            i = end == std::string_view::npos ? text.size() : end + 1;
        } else {
            std::size_t end = i;
            while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
            term = text.substr(i, end - i);
            i = end;
        }
        bool prefix = false;
        while (!term.empty() && term.back() == '*') {
            term.remove_suffix(1);
            prefix = true;
        }
        // A term with no letter or digit would match nothing (the tokenizer drops it); skip it so
        // that "C++ templates" still finds "templates".
        bool hasWordChar = false;
        for (unsigned char c : term) hasWordChar = hasWordChar || std::isalnum(c) || c >= 0x80;
        if (!hasWordChar) continue;
        terms.push_back(quote(term) + (prefix ? "*" : ""));
    }
    std::string query;
    for (const auto& t : terms) query += (query.empty() ? "" : " ") + t;
    return query;
}

}  // namespace detail

Expected<std::vector<SearchHit>> ConversationStore::search(const SearchQuery& query) {
    return guarded(*m_conn, fmt::format("searching for \"{}\"", query.text), [&] {
        Database& db = m_conn->db;
        std::vector<SearchHit> hits;
        const std::string match = query.rawFts ? query.text : ftsQueryFromUserText(query.text);
        if (match.empty() || query.limit == 0) return hits;

        const bool dated = query.from || query.until;
        const bool trash = db.queryInt("SELECT EXISTS(SELECT 1 FROM conversations WHERE deleted_at IS NOT NULL)") != 0;
        // Inner query: the newest matches (FTS5 walks the doclist backwards and stops at the limit),
        // each with its bm25 score; outer query: the best of those.
        std::string sql =
            "SELECT id, score FROM (SELECT messages_fts.rowid AS id, bm25(messages_fts) AS score "
            "FROM messages_fts ";
        if (dated) sql += "JOIN messages m ON m.id = messages_fts.rowid ";
        sql += "WHERE messages_fts MATCH ?1 ";
        if (query.conversationId)
            sql += "AND messages_fts.rowid IN (SELECT id FROM messages WHERE conversation_id = ?2) ";
        if (trash) {
            sql +=
                "AND messages_fts.rowid NOT IN (SELECT t.id FROM messages t JOIN conversations c "
                "ON c.id = t.conversation_id WHERE c.deleted_at IS NOT NULL) ";
        }
        if (query.from) sql += "AND m.created_at >= ?3 ";
        if (query.until) sql += "AND m.created_at < ?4 ";
        sql += "ORDER BY messages_fts.rowid DESC LIMIT ?7) ORDER BY score, id DESC LIMIT ?5 OFFSET ?6";

        std::vector<std::pair<MessageId, double>> ranked;
        try {
            Statement st(db, sql);
            st.bind(1, match);
            if (query.conversationId) st.bind(2, *query.conversationId);
            if (query.from) st.bind(3, *query.from);
            if (query.until) st.bind(4, *query.until);
            st.bind(5, std::int64_t{query.limit}).bind(6, std::int64_t{std::max(0, query.offset)});
            st.bind(7, query.maxRankedMatches > 0 ? std::int64_t{query.maxRankedMatches} : std::int64_t{-1});
            while (st.step()) ranked.emplace_back(st.columnInt(0), st.columnDouble(1));
        } catch (const StorageException& e) {
            // FTS5 reports query syntax errors as plain SQLite errors.
            if (query.rawFts && e.error().code() == ErrorCode::Internal) {
                throwError(ErrorCode::InvalidArgument,
                           fmt::format("the search query is not valid FTS5 syntax: {}", e.error().message()));
            }
            throw;
        }

        Statement snippet(db,
                          "SELECT snippet(messages_fts, 0, ?1, ?2, '…', ?3) FROM messages_fts "
                          "WHERE messages_fts MATCH ?4 AND rowid = ?5");
        Statement meta(db,
                       "SELECT m.conversation_id, c.title, m.role, m.created_at FROM messages m "
                       "JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?");
        for (const auto& [id, rank] : ranked) {
            SearchHit hit;
            hit.messageId = id;
            hit.rank = rank;
            meta.reset();
            meta.bind(1, id);
            if (meta.step()) {
                hit.conversationId = meta.columnInt(0);
                hit.conversationTitle = meta.columnText(1);
                hit.role = roleFromName(meta.columnText(2)).value_or(Role::User);
                hit.createdAt = meta.columnInt(3);
            }
            snippet.reset();
            snippet.bind(1, query.highlightOpen)
                .bind(2, query.highlightClose)
                .bind(3, std::int64_t{std::clamp(query.snippetTokens, 1, 64)})
                .bind(4, match)
                .bind(5, id);
            if (snippet.step()) hit.snippet = snippet.columnText(0);
            hits.push_back(std::move(hit));
        }
        return hits;
    });
}

}  // namespace dsv2::storage
