#pragma once
// A real `dsv2 serve` child process on a free loopback port, for the server and client suites.
// It is started with --port 0 and the port is read from its "listening on" line; its stderr goes
// to a log file next to the test binary (read it when a test fails). The destructor stops it with
// SIGTERM (SIGKILL after a grace period).

#include <sys/types.h>
#include <string>
#include <vector>

namespace dsv2::test {

class ServerProcess {
public:
    // extraArgs come after "serve --model <tiny-lite> --backend cpu --port 0".
    explicit ServerProcess(std::vector<std::string> extraArgs, const std::string& logName);
    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    bool started() const { return m_port > 0; }
    int port() const { return m_port; }
    std::string hostPort() const { return "http://127.0.0.1:" + std::to_string(m_port); }
    std::string baseUrl() const { return hostPort() + "/v1"; }
    pid_t pid() const { return m_pid; }
    const std::string& logPath() const { return m_log; }

    // Sends `signal` and waits up to `seconds` for the exit; the exit status (as waitpid's), or -1
    // when it did not exit in time.
    int signalAndWait(int signal, double seconds);

private:
    pid_t m_pid = -1;
    int m_port = 0;
    bool m_reaped = false;
    std::string m_log;
};

std::string tinyLiteDir();

}  // namespace dsv2::test
