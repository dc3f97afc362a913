#pragma once
// ServedModel: tests/server's ServerProcess (a real `dsv2 serve` with tiny-lite on a free loopback
// port) behind a small facade, in its own translation unit: its header and gui_harness.h both
// declare a tinyLiteDir() in dsv2::test (one std::string, one QString), so they cannot meet.

#include <memory>
#include <string>
#include <vector>

namespace dsv2::test {

class ServerProcess;

class ServedModel {
public:
    ServedModel(std::vector<std::string> extraArgs, const std::string& logName);
    ~ServedModel();
    ServedModel(const ServedModel&) = delete;
    ServedModel& operator=(const ServedModel&) = delete;

    bool started() const;
    std::string baseUrl() const;  // "http://127.0.0.1:PORT/v1"
    std::string logPath() const;
    // Sends `signal`, waits up to `seconds` for the exit; -1 when it did not exit in time.
    int signalAndWait(int signal, double seconds);

private:
    std::unique_ptr<ServerProcess> m_process;
};

}  // namespace dsv2::test
