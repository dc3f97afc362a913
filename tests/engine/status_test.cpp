#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "dsv2/status.h"

using dsv2::Result;
using dsv2::Status;
using dsv2::StatusCode;

namespace {

Result<int> parsePositive(int v) {
    if (v <= 0) return Status(StatusCode::InvalidArgument, "value must be positive, got " + std::to_string(v));
    return v;
}

Result<int> doubled(int v) {
    DSV2_ASSIGN_OR_RETURN(int x, parsePositive(v));
    return 2 * x;
}

Status checkBoth(int a, int b) {
    DSV2_RETURN_IF_ERROR(parsePositive(a).status());
    DSV2_RETURN_IF_ERROR(parsePositive(b).status().withContext("second value"));
    return Status::ok();
}

}  // namespace

TEST_CASE("Status carries code and message") {
    Status ok;
    CHECK(ok.isOk());
    CHECK(ok.toString() == "Ok");
    Status bad(StatusCode::NotFound, "config.json is missing");
    CHECK_FALSE(bad.isOk());
    CHECK(bad.code() == StatusCode::NotFound);
    CHECK(bad.toString() == "NotFound: config.json is missing");
    CHECK(bad.withContext("opening /m").message() == "opening /m: config.json is missing");
}

TEST_CASE("Result holds either a value or an error") {
    auto good = doubled(21);
    REQUIRE(good.isOk());
    CHECK(*good == 42);
    auto bad = doubled(-1);
    CHECK_FALSE(bad.isOk());
    CHECK(bad.status().code() == StatusCode::InvalidArgument);
    CHECK(bad.status().message() == "value must be positive, got -1");
}

TEST_CASE("Result works with move-only values") {
    Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
    REQUIRE(r.isOk());
    std::unique_ptr<int> p = std::move(r).value();
    CHECK(*p == 7);
}

TEST_CASE("RETURN_IF_ERROR stops at the first failure and keeps context") {
    CHECK(checkBoth(1, 2).isOk());
    CHECK(checkBoth(-1, 2).message() == "value must be positive, got -1");
    CHECK(checkBoth(1, -2).message() == "second value: value must be positive, got -2");
}
