#include "process_identity.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

namespace dsv2::storage::detail {

namespace {

std::string hostName() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
    return buf;
}

// Changes at every boot, so a pid and start time from before a reboot never look alive.
std::string bootId() {
    static const std::string id = [] {
        std::ifstream in("/proc/sys/kernel/random/boot_id");
        std::string text;
        std::getline(in, text);
        return text.empty() ? std::string("noboot") : text.substr(0, 8);
    }();
    return id;
}

// Start time of a process in clock ticks since boot (/proc/PID/stat field 22), which tells a live
// process from a later one that reused its pid. Empty when the process does not exist or is a zombie.
std::string processStart(long pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    if (!in) return {};
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');  // the command name may contain spaces and parentheses
    if (close == std::string::npos) return {};
    std::istringstream fields(line.substr(close + 1));
    std::vector<std::string> f;
    std::string field;
    while (fields >> field) f.push_back(field);
    // f[0] is field 3 (state), so field 22 is f[19].
    if (f.size() < 20) return {};
    if (f[0] == "Z" || f[0] == "X") return {};
    return f[19];
}

bool procAvailable() {
    static const bool available = std::ifstream("/proc/self/stat").good();
    return available;
}

}  // namespace

std::string currentWriterIdentity() {
    const long pid = static_cast<long>(getpid());
    const std::string start = procAvailable() ? processStart(pid) : std::string("0");
    return fmt::format("{}/{}/{}/{}", hostName(), bootId(), pid, start);
}

WriterState writerState(const std::string& identity) {
    // host/boot/pid/start, split from the right (a host name has no '/').
    std::vector<std::string> parts;
    std::string_view rest = identity;
    for (int i = 0; i < 3; ++i) {
        const auto slash = rest.rfind('/');
        if (slash == std::string_view::npos) return WriterState::Gone;  // not ours to keep: recover it
        parts.emplace_back(rest.substr(slash + 1));
        rest = rest.substr(0, slash);
    }
    const std::string host(rest);
    const std::string& start = parts[0];
    const std::string& pidText = parts[1];
    const std::string& boot = parts[2];
    if (host != hostName()) return WriterState::Unknown;
    if (boot != bootId()) return WriterState::Gone;
    long pid = 0;
    const auto [ptr, ec] = std::from_chars(pidText.data(), pidText.data() + pidText.size(), pid);
    if (ec != std::errc() || pid <= 0) return WriterState::Gone;
    if (procAvailable()) {
        const std::string now = processStart(pid);
        return (!now.empty() && now == start) ? WriterState::Alive : WriterState::Gone;
    }
    // Without /proc: a pid that exists counts as alive (a reused pid keeps a message streaming until
    // that process exits too, which is the safe side).
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) return WriterState::Alive;
    return WriterState::Gone;
}

}  // namespace dsv2::storage::detail
