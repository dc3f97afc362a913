#pragma once
// Collects every problem found while checking a model folder, so that the user sees them all in
// one error instead of fixing them one run at a time. The message stays one screen long.

#include <string>
#include <vector>

#include "dsv2/status.h"

namespace dsv2 {

class ProblemList {
public:
    void add(StatusCode code, std::string text);
    void add(const Status& status) { add(status.code(), status.message()); }
    bool empty() const { return m_items.empty(); }
    size_t size() const { return m_items.size(); }

    // "title: N problems:\n  - ...". The code is the one all problems share, InvalidData when they
    // differ (Unsupported only when everything wrong is merely unsupported). At most `maxLines`
    // lines are listed, then "... and K more".
    Status toStatus(const std::string& title, size_t maxLines = 16) const;

private:
    struct Item {
        StatusCode code;
        std::string text;
    };
    std::vector<Item> m_items;
};

}  // namespace dsv2
