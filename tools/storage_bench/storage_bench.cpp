// storage_bench: how the history database behaves at scale.
//   1. Builds (or reuses) a synthetic history: N conversations x M messages, Zipf-distributed words
//      from a fixed vocabulary (deterministic), through the public ConversationStore API.
//   2. Search latency (p50/p95/max, ms) per query kind: rare, medium and common words, two words,
//      a prefix, a phrase, plus the stop-word worst case. Target: p95 < 50 ms at 10,000 x 100.
//   3. Streaming: the caller's cost of StreamingWriter::append per token (DeepSeek-V2-Lite-sized
//      routing and top-5 logprobs), and the commit cost per batch and per token.
// Usage: storage_bench [--db FILE] [--conversations 10000] [--messages 100] [--queries 200]
//                      [--tokens 2000] [--keep]
#include "dsv2/storage/conversation_store.h"
#include "dsv2/storage/streaming_writer.h"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace dsv2::storage;
using Clock = std::chrono::steady_clock;

namespace {

double msSince(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// CPU time of this thread: on a busy machine (other builds running) wall times are inflated by
// waiting for a core; CPU time is what the query itself costs.
double threadCpuMs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const auto index = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
    return v[std::min(index, v.size() - 1)];
}

// A fixed vocabulary of pronounceable pseudo-words; word i is the i-th most frequent.
class Corpus {
public:
    explicit Corpus(std::size_t words) : m_rng(12345) {
        const char* consonants = "bcdfghklmnprstvz";
        const char* vowels = "aeiou";
        std::mt19937 gen(99);
        while (m_words.size() < words) {
            const int syllables = 1 + static_cast<int>(m_words.size() % 4);
            std::string w;
            for (int s = 0; s < syllables; ++s) {
                w += consonants[gen() % 16];
                w += vowels[gen() % 5];
            }
            if (m_words.size() > 500) w += consonants[gen() % 16];
            w += std::to_string(m_words.size() % 97);  // keeps words distinct
            m_words.push_back(w);
        }
        // Zipf (s = 1.07) by inverse CDF over the ranks.
        double total = 0;
        for (std::size_t r = 1; r <= words; ++r) total += 1.0 / std::pow(static_cast<double>(r), 1.07);
        double acc = 0;
        for (std::size_t r = 1; r <= words; ++r) {
            acc += 1.0 / std::pow(static_cast<double>(r), 1.07) / total;
            m_cdf.push_back(acc);
        }
    }

    std::size_t randomRank() {
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(m_rng);
        return static_cast<std::size_t>(std::lower_bound(m_cdf.begin(), m_cdf.end(), u) - m_cdf.begin());
    }

    std::string sentence(int words) {
        std::string s;
        for (int i = 0; i < words; ++i) {
            if (i) s += ' ';
            s += m_words[std::min(randomRank(), m_words.size() - 1)];
        }
        return s;
    }

    const std::string& word(std::size_t rank) const { return m_words[rank]; }
    std::mt19937& rng() { return m_rng; }

private:
    std::vector<std::string> m_words;
    std::vector<double> m_cdf;
    std::mt19937 m_rng;
};

TokenRecord liteToken(int i) {
    TokenRecord t;
    t.tokenId = 1000 + i;
    t.logprob = -0.25f;
    for (int k = 0; k < 5; ++k) t.topLogprobs.push_back({1000 + i + k, -0.25f * static_cast<float>(k + 1), "tok"});
    t.moeLayers = 26;  // DeepSeek-V2-Lite: 26 MoE layers, top-6 of 64 experts
    t.topK = 6;
    for (int j = 0; j < 26 * 6; ++j) {
        t.expertIds.push_back(static_cast<std::uint16_t>((i + j * 7) % 64));
        t.expertWeights.push_back(0.1f + 0.01f * static_cast<float>(j % 6));
    }
    return t;
}

void build(ConversationStore& store, Corpus& corpus, int conversations, int messages) {
    const auto start = Clock::now();
    constexpr int kPerTransaction = 50;
    for (int c0 = 0; c0 < conversations; c0 += kPerTransaction) {
        auto result = store.transaction([&] {
            for (int c = c0; c < std::min(conversations, c0 + kPerTransaction); ++c) {
                auto id = store.createConversation({.title = corpus.sentence(4), .modelName = "DeepSeek-V2-Lite-Chat"});
                if (!id) return false;
                std::optional<MessageId> parent;
                for (int m = 0; m < messages; ++m) {
                    // Users write short prompts, the model long answers (8..40 and 30..150 words).
                    const bool user = m % 2 == 0;
                    const int words =
                        user ? 8 + static_cast<int>(corpus.rng()() % 33) : 30 + static_cast<int>(corpus.rng()() % 121);
                    auto mid =
                        store.appendMessage(*id, parent, user ? Role::User : Role::Assistant, corpus.sentence(words));
                    if (!mid) {
                        std::fprintf(stderr, "%s\n", mid.error().message().c_str());
                        return false;
                    }
                    parent = *mid;
                }
            }
            return true;
        });
        if (!result) {
            std::fprintf(stderr, "building failed: %s\n", result.error().message().c_str());
            std::exit(1);
        }
        if ((c0 / kPerTransaction) % 20 == 0) {
            std::fprintf(stderr, "\r  %d / %d conversations (%.0f s)", c0 + kPerTransaction, conversations,
                         msSince(start) / 1000.0);
        }
    }
    std::fprintf(stderr, "\n");
    std::printf("built %d conversations x %d messages in %.1f s (%.0f messages/s)\n", conversations, messages,
                msSince(start) / 1000.0, conversations * messages / (msSince(start) / 1000.0));
}

struct Kind {
    const char* name;
    std::function<std::string()> query;
};

void benchSearch(ConversationStore& store, Corpus& corpus, int queries, std::size_t vocabulary) {
    std::mt19937 gen(7);
    auto rankIn = [&](std::size_t lo, std::size_t hi) { return lo + gen() % (hi - lo); };
    const std::vector<Kind> kinds = {
        {"rare word (rank 5k-30k)", [&] { return corpus.word(rankIn(5000, vocabulary)); }},
        {"medium word (rank 500-5k)", [&] { return corpus.word(rankIn(500, 5000)); }},
        {"common word (rank 50-500)", [&] { return corpus.word(rankIn(50, 500)); }},
        {"two words (medium + rare)",
         [&] { return corpus.word(rankIn(500, 5000)) + " " + corpus.word(rankIn(5000, vocabulary)); }},
        {"prefix (4 letters*)", [&] { return corpus.word(rankIn(500, vocabulary)).substr(0, 4) + "*"; }},
        {"phrase (two common words)",
         [&] { return "\"" + corpus.word(rankIn(0, 200)) + " " + corpus.word(rankIn(0, 200)) + "\""; }},
        {"stop word (rank 0-50)", [&] { return corpus.word(rankIn(0, 50)); }},
    };
    std::printf(
        "\nsearch latency, %d queries per kind, 50 hits per page with snippets (ms; wall, and CPU of the "
        "query)\n",
        queries);
    std::printf("%-28s %8s %8s %8s %9s %9s %10s\n", "query kind", "p50", "p95", "max", "cpu p50", "cpu p95",
                "avg hits");
    std::vector<double> all;
    std::vector<double> allCpu;
    for (const auto& kind : kinds) {
        std::vector<double> times;
        std::vector<double> cpu;
        double hits = 0;
        for (int i = 0; i < queries; ++i) {
            SearchQuery q;
            q.text = kind.query();
            const auto start = Clock::now();
            const double cpuStart = threadCpuMs();
            auto result = store.search(q);
            cpu.push_back(threadCpuMs() - cpuStart);
            times.push_back(msSince(start));
            if (!result) {
                std::fprintf(stderr, "search failed: %s\n", result.error().message().c_str());
                std::exit(1);
            }
            hits += static_cast<double>(result->size());
        }
        std::printf("%-28s %8.2f %8.2f %8.2f %9.2f %9.2f %10.1f\n", kind.name, percentile(times, 0.5),
                    percentile(times, 0.95), percentile(times, 1.0), percentile(cpu, 0.5), percentile(cpu, 0.95),
                    hits / queries);
        all.insert(all.end(), times.begin(), times.end());
        allCpu.insert(allCpu.end(), cpu.begin(), cpu.end());
    }
    std::printf("%-28s %8.2f %8.2f %8.2f %9.2f %9.2f   (target p95 < 50 ms)\n", "all kinds", percentile(all, 0.5),
                percentile(all, 0.95), percentile(all, 1.0), percentile(allCpu, 0.5), percentile(allCpu, 0.95));
}

void benchStreaming(ConversationStore& store, int tokens) {
    auto conversation = store.createConversation({.title = "streaming bench"});
    auto prompt = store.appendUserMessage(*conversation, std::nullopt, "go");
    std::printf("\nstreaming %d tokens with routing (26 x 6) and top-5 logprobs (%zu bytes of record per token)\n",
                tokens, static_cast<std::size_t>(4 + 4 + 4 + 1 + 4 + 1 + 5 * 13 + 2 + 1 + 26 * 6 * 3));

    {
        // The generation thread's cost: append() only buffers; the background thread commits.
        auto writer = store.beginAssistantMessage(*conversation, *prompt);
        std::vector<double> appendUs;
        const auto start = Clock::now();
        for (int i = 0; i < tokens; ++i) {
            TokenRecord t = liteToken(i);
            const auto s = Clock::now();
            (*writer)->append(" word" + std::to_string(i), std::move(t));
            appendUs.push_back(msSince(s) * 1000.0);
        }
        const double appendTotal = msSince(start);
        (void)(*writer)->finish({.generatedTokens = tokens});
        std::printf(
            "  append() on the generation thread: p50 %.2f us, p99 %.2f us, max %.0f us per token "
            "(%.0f ms for all)\n",
            percentile(appendUs, 0.5), percentile(appendUs, 0.99), percentile(appendUs, 1.0), appendTotal);
    }
    for (int batch : {12, 50}) {
        // The committing side: batches of `batch` tokens (12 = 250 ms at 50 tok/s).
        WriterOptions options;
        options.backgroundFlush = false;
        options.flushInterval = std::chrono::hours(1);
        auto writer = store.beginAssistantMessage(*conversation, *prompt, options);
        std::vector<double> commitMs;
        for (int i = 0; i < tokens; ++i) {
            (*writer)->append(" word" + std::to_string(i), liteToken(i));
            if ((i + 1) % batch == 0) {
                const auto s = Clock::now();
                (void)(*writer)->flush();
                commitMs.push_back(msSince(s));
            }
        }
        (void)(*writer)->finish({.generatedTokens = tokens});
        double total = 0;
        for (double t : commitMs) total += t;
        std::printf(
            "  commit of a %2d-token batch: p50 %.2f ms, p95 %.2f ms, max %.2f ms; %.1f us per token "
            "(answer of %d tokens)\n",
            batch, percentile(commitMs, 0.5), percentile(commitMs, 0.95), percentile(commitMs, 1.0),
            total * 1000.0 / tokens, tokens);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"storage_bench: search latency and streaming cost of the history database"};
    std::string db;
    int conversations = 10000;
    int messages = 100;
    int queries = 200;
    int tokens = 2000;
    bool keep = false;
    app.add_option("--db", db, "Database file (reused if it exists; default: a temporary file)");
    app.add_option("--conversations", conversations, "Conversations to build")->capture_default_str();
    app.add_option("--messages", messages, "Messages per conversation")->capture_default_str();
    app.add_option("--queries", queries, "Queries per kind")->capture_default_str();
    app.add_option("--tokens", tokens, "Tokens per streamed answer")->capture_default_str();
    app.add_flag("--keep", keep, "Keep the temporary database");
    CLI11_PARSE(app, argc, argv);
    spdlog::set_level(spdlog::level::warn);

    const bool temporary = db.empty();
    if (temporary) db = (std::filesystem::temp_directory_path() / "dsv2-storage-bench.sqlite").string();
    const bool reuse = std::filesystem::exists(db);
    {
        auto store = ConversationStore::open(db);
        if (!store) {
            std::fprintf(stderr, "%s\n", store.error().message().c_str());
            return 1;
        }
        constexpr std::size_t kVocabulary = 30000;
        Corpus corpus(kVocabulary);
        if (!reuse) {
            build(*store, corpus, conversations, messages);
        } else {
            std::printf("reusing %s\n", db.c_str());
        }
        auto list = store->listConversations();
        long long total = 0;
        if (list) {
            for (const auto& c : *list) total += c.messageCount;
        }
        std::printf("database: %s, %.0f MiB, %zu conversations, %lld messages\n", db.c_str(),
                    static_cast<double>(std::filesystem::file_size(db)) / (1024.0 * 1024.0), list ? list->size() : 0,
                    total);
        benchSearch(*store, corpus, queries, kVocabulary);
        benchStreaming(*store, tokens);
    }
    if (temporary && !keep && !reuse) {
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
    }
    return 0;
}
