// Session::generate: prompt prefill (reusing the cached prefix), then token-by-token decode with
// sampling, streaming text, stop conditions and cancel. Backend-independent: everything below
// the seam is one BackendSession::forward per step.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <numeric>
#include <system_error>

#include "core/engine_internal.h"
#include "core/sampler.h"
#include "core/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace dsv2 {
namespace {

using Clock = std::chrono::steady_clock;

// Prompts are run in chunks so that a cancel is noticed during a long prefill.
constexpr int64_t kPrefillChunk = 256;

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Status validateParams(const GenerateParams& p) {
    auto bad = [](const std::string& m) { return Status(StatusCode::InvalidArgument, m); };
    if (!(p.temperature >= 0.0) || !std::isfinite(p.temperature)) return bad("temperature must be >= 0");
    if (!(p.topP > 0.0 && p.topP <= 1.0)) return bad("top_p must be in (0, 1]");
    if (p.topK < 0) return bad("top_k must be >= 0 (0 turns it off)");
    if (!(p.minP >= 0.0 && p.minP <= 1.0)) return bad("min_p must be in [0, 1]");
    if (!(p.repetitionPenalty > 0.0) || !std::isfinite(p.repetitionPenalty))
        return bad("repetition_penalty must be > 0 (1 turns it off)");
    if (p.maxNewTokens < 0) return bad("max_new_tokens must be >= 0");
    if (p.topNAlternatives < 0) return bad("the number of alternatives must be >= 0");
    return Status::ok();
}

bool cancelled(const GenerateRequest& r) { return r.cancel && r.cancel->load(std::memory_order_relaxed); }

}  // namespace

const char* stopReasonName(StopReason reason) {
    switch (reason) {
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop_string";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::ContextFull: return "context_full";
    }
    return "unknown";
}

Result<GenerateResult> Session::generate(const GenerateRequest& request, const EventCallback& onEvent) {
    const Clock::time_point t0 = Clock::now();
    Engine::Impl& engine = *d->engine;
    const Tokenizer& tokenizer = engine.folder->tokenizer();
    const ModelInfo& info = engine.info;
    const GenerateParams& params = request.params;
    DSV2_RETURN_IF_ERROR(validateParams(params));
    auto emit = [&](GenerateEvent e) {
        if (onEvent) onEvent(e);
    };

    // --- the prompt --------------------------------------------------------------------------
    GenerateResult result;
    if (!request.messages.empty()) {
        Result<std::vector<int32_t>> rendered = renderChatTokens(engine, request.messages, true);
        if (!rendered.isOk()) return rendered.status();
        result.promptTokens = std::move(rendered).value();
    } else {
        result.promptTokens = request.promptTokens;
    }
    const std::vector<int32_t>& prompt = result.promptTokens;
    const auto promptSize = static_cast<int64_t>(prompt.size());
    if (prompt.empty()) return Status(StatusCode::InvalidArgument, "the prompt is empty");
    for (size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] < 0 || prompt[i] >= info.vocabSize)
            return Status(StatusCode::InvalidArgument, "prompt token " + std::to_string(i) + " has id " +
                                                           std::to_string(prompt[i]) + ", outside the vocabulary [0, " +
                                                           std::to_string(info.vocabSize) + ")");
    const int64_t capacity = d->cache->capacity();
    if (promptSize >= capacity)
        return Status(StatusCode::OutOfRange, "the prompt has " + std::to_string(promptSize) +
                                                  " tokens but the context holds " + std::to_string(capacity) +
                                                  " (one more is needed to reply); shorten the conversation or "
                                                  "raise the context limit");

    // --- prefill, reusing the shared prefix ----------------------------------------------------
    const auto shared = static_cast<int64_t>(
        std::mismatch(d->tokens.begin(), d->tokens.end(), prompt.begin(), prompt.end()).first - d->tokens.begin());
    // The last prompt token is always run again: its logits start the reply.
    const int64_t reused = std::min(shared, promptSize - 1);
    DSV2_RETURN_IF_ERROR(d->truncate(reused));

    GenerationStats& stats = result.stats;
    stats.promptTokens = promptSize;
    stats.reusedPromptTokens = reused;
    std::vector<float> logits;  // (vocab) of the last position run
    bool stoppedEarly = false;
    for (int64_t at = reused; at < promptSize; at += kPrefillChunk) {
        if (cancelled(request)) {
            stoppedEarly = true;
            break;
        }
        const int64_t n = std::min(kPrefillChunk, promptSize - at);
        DSV2_ASSIGN_OR_RETURN(ForwardResult f, d->forward(std::span<const int32_t>(prompt).subspan(
                                                              static_cast<size_t>(at), static_cast<size_t>(n)),
                                                          false));
        logits = std::move(f.logits);
    }
    stats.prefillSeconds = secondsSince(t0);
    const int64_t computed = static_cast<int64_t>(d->tokens.size()) - reused;
    stats.prefillTokensPerSecond =
        stats.prefillSeconds > 0 ? static_cast<double>(computed) / stats.prefillSeconds : 0.0;
    if (params.wantPromptRouting && !stoppedEarly)
        result.promptRouting.assign(d->routing.begin(), d->routing.begin() + promptSize);
    {
        PromptProcessedEvent e;
        e.promptTokens = promptSize;
        e.reusedTokens = reused;
        e.computedTokens = computed;
        e.seconds = stats.prefillSeconds;
        e.tokensPerSecond = stats.prefillTokensPerSecond;
        e.routing = result.promptRouting;
        e.cache = cacheUsage();
        emit(std::move(e));
    }

    // --- decode --------------------------------------------------------------------------------
    const Clock::time_point decodeStart = Clock::now();
    Sampler sampler(params, std::min<int64_t>(tokenizer.size(), info.vocabSize));
    StreamingDecoder decoder(tokenizer, true);
    StopMatcher stops(params.stopStrings);
    std::vector<float> logprobs(static_cast<size_t>(info.vocabSize));
    std::vector<int32_t> alternativeOrder;  // ids by log-probability (only the first few are sorted)
    StopReason reason = StopReason::MaxTokens;
    if (stoppedEarly) reason = StopReason::Cancelled;
    while (!stoppedEarly) {
        if (static_cast<int64_t>(result.tokens.size()) >= params.maxNewTokens) {
            reason = StopReason::MaxTokens;
            break;
        }
        if (cancelled(request)) {
            reason = StopReason::Cancelled;
            break;
        }
        if (d->cache->length() + 1 > capacity) {
            reason = StopReason::ContextFull;
            break;
        }
        const int32_t id = sampler.sample(logits, d->tokens);

        TokenEvent e;
        e.index = static_cast<int64_t>(result.tokens.size());
        e.id = id;
        // The token's log-probability and the alternatives (a pass over the whole vocabulary,
        // ~0.7 ms for 102,400 entries) are worked out on another thread while the model runs the
        // token: the forward needs only the id. `logits` is not touched until both are done.
        const auto nAlternatives = std::min<size_t>(static_cast<size_t>(params.topNAlternatives), logprobs.size());
        std::vector<int32_t>& order = alternativeOrder;
        auto logprobJob = [&] {
            logSoftmax(logits.data(), static_cast<int64_t>(logits.size()), logprobs.data());
            if (nAlternatives == 0) return;
            order.resize(logprobs.size());
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(nAlternatives), order.end(),
                              [&](int32_t a, int32_t b) {
                                  return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
                              });
        };
        std::future<void> logprobWork;
        try {
            logprobWork = std::async(std::launch::async, logprobJob);
        } catch (const std::system_error&) {
            logprobJob();  // no thread to be had: the same work, before the forward
        }
        // The token goes through the model right away: that gives its routing, puts it in the
        // cache (an eos too, so that the next chat turn reuses it) and the logits for the next.
        const int32_t ids[1] = {id};
        Result<ForwardResult> forwarded = d->forward(ids, false);
        if (logprobWork.valid()) logprobWork.get();
        e.logprob = logprobs[static_cast<size_t>(id)];
        for (size_t k = 0; k < nAlternatives; ++k)
            e.alternatives.push_back(
                {order[k], logprobs[static_cast<size_t>(order[k])], tokenizer.tokenBytes(order[k])});
        if (!forwarded.isOk()) return forwarded.status();
        ForwardResult f = std::move(forwarded).value();
        logits = std::move(f.logits);
        e.routing = d->routing.back();
        e.cache = cacheUsage();
        e.textDelta = stops.push(decoder.push(id));
        result.text += e.textDelta;
        result.tokens.push_back(id);
        result.logprobs.push_back(e.logprob);
        result.routing.push_back(e.routing);
        e.seconds = secondsSince(t0);
        if (result.tokens.size() == 1) stats.timeToFirstTokenSeconds = e.seconds;
        emit(std::move(e));
        if (stops.stopped()) {
            reason = StopReason::StopString;
            break;
        }
        if (id == info.eosTokenId && !params.ignoreEos) {
            reason = StopReason::Eos;
            break;
        }
    }

    FinishedEvent fin;
    fin.reason = reason;
    if (reason == StopReason::StopString) {
        fin.stopString = stops.matched();
    } else {
        fin.textDelta = stops.push(decoder.flush());
        if (stops.stopped()) {  // the tail completed a stop string
            reason = fin.reason = StopReason::StopString;
            fin.stopString = stops.matched();
        } else {
            fin.textDelta += stops.flush();
        }
    }
    result.text += fin.textDelta;
    result.reason = reason;
    result.stopString = fin.stopString;
    stats.generatedTokens = static_cast<int64_t>(result.tokens.size());
    stats.decodeSeconds = secondsSince(decodeStart);
    stats.decodeTokensPerSecond =
        stats.decodeSeconds > 0 ? static_cast<double>(stats.generatedTokens) / stats.decodeSeconds : 0.0;
    stats.totalSeconds = secondsSince(t0);
    fin.stats = stats;
    fin.cache = cacheUsage();
    emit(std::move(fin));
    return result;
}

}  // namespace dsv2
