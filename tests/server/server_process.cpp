#include "server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

namespace dsv2::test {

std::string tinyLiteDir() { return std::string(DSV2_TEST_DATA_DIR) + "/tiny-lite"; }

ServerProcess::ServerProcess(std::vector<std::string> extraArgs, const std::string& logName)
    : m_log(std::string(DSV2_SERVER_TEST_LOG_DIR) + "/" + logName + ".log") {
    std::vector<std::string> args = {DSV2_EXE, "serve",  "--model", tinyLiteDir(), "--backend",
                                     "cpu",    "--port", "0",       "--threads",   "1"};
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    int out[2];
    if (pipe(out) != 0) return;
    m_pid = fork();
    if (m_pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        const int log = open(m_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log >= 0) dup2(log, STDERR_FILENO);
        close(out[0]);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(out[1]);
    // Read stdout until "listening on http://127.0.0.1:PORT" (ASan builds load slowly: 60 s).
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{out[0], POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        char buf[512];
        const ssize_t n = read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
        const size_t at = text.find("listening on http://127.0.0.1:");
        if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
            m_port = std::stoi(text.substr(at + 30));
            break;
        }
    }
    close(out[0]);  // the server writes nothing more to stdout
    if (m_port <= 0)
        std::fprintf(stderr, "dsv2 serve did not start; its log: %s\nstdout: %s\n", m_log.c_str(), text.c_str());
}

int ServerProcess::signalAndWait(int signal, double seconds) {
    if (m_pid <= 0 || m_reaped) return -1;
    kill(m_pid, signal);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(m_pid, &status, WNOHANG) == m_pid) {
            m_reaped = true;
            return status;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
}

ServerProcess::~ServerProcess() {
    if (m_pid <= 0 || m_reaped) return;
    if (signalAndWait(SIGTERM, 20.0) == -1) signalAndWait(SIGKILL, 5.0);
}

}  // namespace dsv2::test
