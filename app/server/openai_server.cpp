#include "server/openai_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace dsv2::server {

using nlohmann::json;

namespace {

void send(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(dumpJson(body), "application/json");
}

void sendError(httplib::Response& res, const ApiError& e) { send(res, e.status, errorJson(e)); }

// Every byte is compared whatever the first difference, so the key does not leak through timing.
bool sameKey(const std::string& given, const std::string& key) {
    if (given.size() != key.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
    return diff == 0;
}

std::string sseData(const json& j) { return "data: " + dumpJson(j) + "\n\n"; }

}  // namespace

// One admitted completion request: what to run, its place in line and its cancel flag.
struct OpenAiServer::Job {
    ApiRequest request;
    std::vector<int32_t> prompt;
    std::unique_ptr<GenerationQueue::Place> place;
    std::atomic<bool> cancel{false};
};

OpenAiServer::OpenAiServer(Engine& engine, Session& session, ServerOptions options)
    : m_engine(engine),
      m_session(session),
      m_options(std::move(options)),
      m_defaults(engine.defaultParams()),
      m_queue(m_options.maxWaiting),
      m_http(std::make_unique<httplib::Server>()) {
    m_model.name = m_options.servedModelName.empty() ? engine.info().name : m_options.servedModelName;
    m_model.engine = &engine;
    m_model.context = session.capacity();
    m_model.returnRouting = m_options.returnRouting;
    m_model.created =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    install();
}

OpenAiServer::~OpenAiServer() = default;

void OpenAiServer::install() {
    httplib::Server& http = *m_http;
    const int threads = std::max(2, m_options.threads);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_payload_max_length(m_options.maxBodyBytes);
    http.set_read_timeout(m_options.readTimeoutSeconds, 0);
    http.set_write_timeout(10, 0);
    http.set_keep_alive_timeout(5);

    // Errors httplib answers itself (unknown path, 413, a request it could not parse) get an
    // OpenAI error body too; ours already have one.
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
            ApiError e;
            e.status = res.status;
            if (res.status == 404) {
                e.message = "no such endpoint: " + req.method + " " + req.path +
                            " (this server has GET /v1/models, POST /v1/chat/completions and POST /v1/completions)";
                e.code = "not_found";
            } else if (res.status == 413) {
                e.message = "the request body is larger than " + std::to_string(m_options.maxBodyBytes) + " bytes";
                e.code = "request_too_large";
            } else {
                e.message = "the request could not be read (HTTP " + std::to_string(res.status) + ")";
            }
            send(res, res.status, errorJson(e));
            return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        spdlog::error("serve: request failed: {}", what);
        send(res, 500, errorJson({500, "internal error: " + what, "", "server_error", ""}));
    });
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (req.path.rfind("/v1/", 0) == 0 && !authorized(req, res)) return httplib::Server::HandlerResponse::Handled;
        return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        spdlog::info("serve: {} {} {} -> {}", req.remote_addr, req.method, req.path, res.status);
    });

    http.Get("/health", [](const httplib::Request&, httplib::Response& res) { send(res, 200, {{"status", "ok"}}); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
        send(res, 200, {{"object", "list"}, {"data", json::array({modelJson(m_model)})}});
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
        const std::string id = req.matches[1];
        if (id != m_model.name)
            return sendError(
                res, {404, "the model '" + id + "' does not exist; this server serves '" + m_model.name + "'", "model",
                      "invalid_request_error", "model_not_found"});
        send(res, 200, modelJson(m_model));
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
        handleCompletion(req, res, Endpoint::ChatCompletions);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
        handleCompletion(req, res, Endpoint::Completions);
    });
}

bool OpenAiServer::authorized(const httplib::Request& req, httplib::Response& res) const {
    if (m_options.apiKey.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.rfind(prefix, 0) == 0 && sameKey(header.substr(prefix.size()), m_options.apiKey)) return true;
    sendError(res,
              {401,
               header.empty() ? "no API key: send the header 'Authorization: Bearer <key>' (the server was started "
                                "with --api-key)"
                              : "the API key is not the one this server was started with",
               "", "invalid_request_error", "invalid_api_key"});
    return false;
}

ApiResult<std::vector<int32_t>> OpenAiServer::promptTokens(const ApiRequest& r) const {
    std::vector<int32_t> ids;
    if (r.endpoint == Endpoint::ChatCompletions) {
        auto rendered = m_engine.renderChat(r.messages, true);
        if (!rendered.isOk())
            return badRequest("the messages cannot be rendered: " + rendered.status().message(), "messages");
        ids = std::move(rendered).value();
    } else if (r.promptIsTokens) {
        for (int32_t id : r.promptTokenIds)
            if (id >= m_engine.info().vocabSize)
                return badRequest("prompt token id " + std::to_string(id) + " is outside the vocabulary (" +
                                      std::to_string(m_engine.info().vocabSize) + " tokens)",
                                  "prompt");
        ids = r.promptTokenIds;
    } else {
        ids = m_engine.encode(r.prompt, true);
    }
    if (static_cast<int64_t>(ids.size()) >= m_model.context)
        return ApiError{400,
                        "the prompt has " + std::to_string(ids.size()) + " tokens but the context holds " +
                            std::to_string(m_model.context) + " (one more is needed to reply); shorten it",
                        r.endpoint == Endpoint::ChatCompletions ? "messages" : "prompt", "invalid_request_error",
                        "context_length_exceeded"};
    return ids;
}

void OpenAiServer::handleCompletion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    auto parsed = parseApiRequest(req.body, endpoint, m_defaults);
    if (auto* e = std::get_if<ApiError>(&parsed)) return sendError(res, *e);
    auto job = std::make_shared<Job>();
    job->request = std::move(std::get<ApiRequest>(parsed));
    const ApiRequest& r = job->request;
    if (!r.model.empty() && r.model != m_model.name)
        return sendError(
            res, {404, "the model '" + r.model + "' does not exist; this server serves '" + m_model.name + "'", "model",
                  "invalid_request_error", "model_not_found"});
    auto prompt = promptTokens(r);
    if (auto* e = std::get_if<ApiError>(&prompt)) return sendError(res, *e);
    job->prompt = std::move(std::get<std::vector<int32_t>>(prompt));
    // The reply cannot outgrow the context: asking for more ends with finish_reason "length".
    job->request.params.maxNewTokens =
        std::min<int64_t>(job->request.params.maxNewTokens, m_model.context - static_cast<int64_t>(job->prompt.size()));

    if (m_stopping) return sendError(res, {503, "the server is shutting down", "", "server_error", "shutting_down"});
    job->place = m_queue.tryJoin();
    if (!job->place) {
        res.set_header("Retry-After", "1");
        return sendError(res, {429,
                               "the server is busy: one generation runs and " + std::to_string(m_options.maxWaiting) +
                                   " wait; retry shortly",
                               "", "rate_limit_error", "server_busy"});
    }
    if (r.stream)
        runStreaming(job, res);
    else
        runBlocking(job, res);
}

GenerateRequest OpenAiServer::engineRequest(Job& job) const {
    GenerateRequest g;
    g.promptTokens = job.prompt;
    g.params = job.request.params;
    g.params.wantPromptRouting = m_model.returnRouting;
    g.cancel = &job.cancel;
    return g;
}

void OpenAiServer::setRunning(std::atomic<bool>* cancel) {
    std::lock_guard lock(m_runningMutex);
    m_runningCancel = cancel;
    if (cancel && m_stopping) cancel->store(true);
}

void OpenAiServer::runBlocking(const std::shared_ptr<Job>& job, httplib::Response& res) {
    if (!job->place->waitTurn())
        return sendError(res, {503, "the server is shutting down", "", "server_error", "shutting_down"});
    setRunning(&job->cancel);
    std::vector<std::vector<TokenAlternative>> alternatives;
    auto result = m_session.generate(engineRequest(*job), [&](const GenerateEvent& e) {
        if (const auto* t = std::get_if<TokenEvent>(&e)) alternatives.push_back(t->alternatives);
    });
    setRunning(nullptr);
    job->place.reset();
    if (!result.isOk()) {
        const bool input =
            result.status().code() == StatusCode::InvalidArgument || result.status().code() == StatusCode::OutOfRange;
        return sendError(res, {input ? 400 : 500, result.status().message(), "",
                               input ? "invalid_request_error" : "server_error", ""});
    }
    send(res, 200, ResponseBuilder(m_model, job->request).full(*result, alternatives));
}

void OpenAiServer::runStreaming(const std::shared_ptr<Job>& job, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    // Exactly "text/event-stream": httplib compresses other text types, which would hold the
    // tokens back until the end.
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job](size_t, httplib::DataSink& sink) {
            auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
            const ResponseBuilder builder(m_model, job->request);
            if (!job->place->waitTurn()) {
                write(sseData(errorJson({503, "the server is shutting down", "", "server_error", "shutting_down"})));
                write("data: [DONE]\n\n");
                sink.done();
                return true;
            }
            setRunning(&job->cancel);
            bool clientGone = !write(sseData(builder.openingChunk(job->prompt)));
            size_t sent = 0;
            auto result = m_session.generate(engineRequest(*job), [&](const GenerateEvent& e) {
                const auto* t = std::get_if<TokenEvent>(&e);
                if (!t || clientGone) return;
                if (!write(sseData(builder.tokenChunk(*t, sent)))) {
                    // The client closed the connection: stop the engine before the next token.
                    clientGone = true;
                    job->cancel.store(true);
                    spdlog::info("serve: the client went away after {} tokens; generation cancelled", t->index + 1);
                }
                sent += t->textDelta.size();
            });
            if (clientGone) job->cancel.store(true);
            setRunning(nullptr);
            job->place.reset();  // the next request may start while this one finishes writing
            if (clientGone) return false;
            if (!result.isOk()) {
                write(sseData(errorJson({500, result.status().message(), "", "server_error", ""})));
            } else {
                write(sseData(builder.closingChunk(*result, result->text.substr(std::min(sent, result->text.size())))));
                if (job->request.includeUsage) write(sseData(builder.usageChunk(result->stats)));
            }
            write("data: [DONE]\n\n");
            sink.done();
            return true;
        },
        [job](bool) { job->place.reset(); });
}

Result<int> OpenAiServer::bind() {
    if (m_options.port == 0) {
        const int port = m_http->bind_to_any_port(m_options.host);
        if (port <= 0) return Status(StatusCode::Unavailable, "cannot listen on " + m_options.host + " (any port)");
        return port;
    }
    if (!m_http->bind_to_port(m_options.host, m_options.port))
        return Status(StatusCode::Unavailable, "cannot listen on " + m_options.host + ":" +
                                                   std::to_string(m_options.port) +
                                                   " (in use, or not an address of this machine); choose another "
                                                   "--port or --host");
    return m_options.port;
}

Status OpenAiServer::serve() {
    if (!m_http->listen_after_bind() && !m_stopping) return Status(StatusCode::IoError, "the server stopped listening");
    return Status::ok();
}

void OpenAiServer::stop() {
    m_stopping = true;
    m_queue.close();
    {
        std::lock_guard lock(m_runningMutex);
        if (m_runningCancel) m_runningCancel->store(true);
    }
    m_http->stop();
}

}  // namespace dsv2::server
