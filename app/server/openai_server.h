#pragma once
// `dsv2 serve`: an OpenAI-compatible HTTP server over one engine and one session.
//
// Requests run one at a time on the engine (the session's cache keeps the prefix a follow-up
// shares with the previous conversation); the others wait in a short FIFO line and beyond it are
// refused with 429. A streaming request whose client goes away is cancelled at the next token
// (the failed write is the signal). stop() may be called from any thread: it cancels the running
// generation, refuses the waiting ones and makes serve() return.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "dsv2/engine.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/generation_queue.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace dsv2::server {

struct ServerOptions {
    std::string host = "127.0.0.1";  // loopback unless asked otherwise
    int port = 8000;                 // 0 = a free port (bind() says which)
    std::string apiKey;              // empty = no key needed
    std::string servedModelName;     // empty = the model folder's name
    bool returnRouting = false;      // vLLM's --enable-return-routed-experts
    int maxWaiting = 4;              // requests that may wait while one runs
    size_t maxBodyBytes = 4u << 20;
    int readTimeoutSeconds = 10;  // a client that stops sending mid-request is dropped after this
    int threads = 8;              // HTTP worker threads (connections served at once)
};

class OpenAiServer {
public:
    OpenAiServer(Engine& engine, Session& session, ServerOptions options);
    ~OpenAiServer();
    OpenAiServer(const OpenAiServer&) = delete;
    OpenAiServer& operator=(const OpenAiServer&) = delete;

    // Binds the listening socket; the port (useful with port 0) or why not.
    Result<int> bind();
    // Serves until stop(). Blocks.
    Status serve();
    void stop();

    const ServedModel& model() const { return m_model; }

private:
    struct Job;
    void install();
    bool authorized(const httplib::Request& req, httplib::Response& res) const;
    void handleCompletion(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
    ApiResult<std::vector<int32_t>> promptTokens(const ApiRequest& r) const;
    void runBlocking(const std::shared_ptr<Job>& job, httplib::Response& res);
    void runStreaming(const std::shared_ptr<Job>& job, httplib::Response& res);
    GenerateRequest engineRequest(Job& job) const;
    void setRunning(std::atomic<bool>* cancel);

    Engine& m_engine;
    Session& m_session;
    ServerOptions m_options;
    ServedModel m_model;
    GenerateParams m_defaults;
    GenerationQueue m_queue;
    std::unique_ptr<httplib::Server> m_http;
    std::atomic<bool> m_stopping{false};
    std::mutex m_runningMutex;
    std::atomic<bool>* m_runningCancel = nullptr;  // the running generation's cancel flag
};

}  // namespace dsv2::server
