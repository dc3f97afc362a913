#include <doctest/doctest.h>

#include <string>

#include "dsv2/log.h"
#include "dsv2/version.h"

TEST_CASE("build info names the version and backends") {
    const auto info = dsv2::buildInfo();
    CHECK(info.version == "0.1.0");
    CHECK_FALSE(info.buildType.empty());
    CHECK(info.cudaCompiled == !info.cudaVersion.empty());
}

TEST_CASE("version report never fails, GPU or not") {
    const std::string report = dsv2::versionReport("dsv2");
    CHECK(report.rfind("dsv2 0.1.0", 0) == 0);
    CHECK(report.find("CUDA support:") != std::string::npos);
    // Either GPUs are listed or the reason for none is given on its own line.
    const bool listed = report.find("GPU 0:") != std::string::npos;
    const bool explained = report.find("GPUs: none") != std::string::npos;
    CHECK(listed != explained);
}

namespace {
struct CapturingSink final : dsv2::LogSink {
    std::string text;
    void log(dsv2::LogLevel, std::string_view m) override { text += std::string(m) + "\n"; }
};
}  // namespace

TEST_CASE("log sink receives messages at or above the level") {
    auto sink = std::make_shared<CapturingSink>();
    dsv2::setLogSink(sink);
    dsv2::setLogLevel(dsv2::LogLevel::Info);
    dsv2::logDebug("hidden");
    dsv2::logInfo("shown");
    dsv2::logError("also shown");
    dsv2::setLogSink(nullptr);
    CHECK(sink->text == "shown\nalso shown\n");
}
