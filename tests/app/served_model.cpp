#include "served_model.h"

#include "server_process.h"

namespace dsv2::test {

ServedModel::ServedModel(std::vector<std::string> extraArgs, const std::string& logName)
    : m_process(std::make_unique<ServerProcess>(std::move(extraArgs), logName)) {}
ServedModel::~ServedModel() = default;
bool ServedModel::started() const { return m_process->started(); }
std::string ServedModel::baseUrl() const { return m_process->baseUrl(); }
std::string ServedModel::logPath() const { return m_process->logPath(); }
int ServedModel::signalAndWait(int signal, double seconds) { return m_process->signalAndWait(signal, seconds); }

}  // namespace dsv2::test
