#pragma once
// Server-sent events, as the HTML standard defines the stream: lines end in \n, \r\n or \r; a
// blank line dispatches the event; "data:" lines are joined with \n; ":" starts a comment.
// Bytes arrive in whatever pieces the network gives, so a line, or a \r\n pair, may be split
// anywhere: the parser keeps the unfinished tail until the next feed().

#include <functional>
#include <string>
#include <string_view>

namespace dsv2::remote {

struct SseEvent {
    std::string event;  // the "event:" field; empty means "message"
    std::string data;
};

class SseParser {
public:
    // Return false from the callback to stop: feed() then returns false at once.
    using Handler = std::function<bool(const SseEvent&)>;
    explicit SseParser(Handler handler) : m_handler(std::move(handler)) {}

    bool feed(std::string_view bytes);
    // At the end of the stream: an event without its closing blank line is dropped (the
    // standard's rule); true when nothing was pending.
    bool finish() const { return m_line.empty() && !m_hasData; }

private:
    bool line(std::string_view text);

    Handler m_handler;
    std::string m_line;
    bool m_lastWasCr = false;  // a \r ended the previous piece: a leading \n belongs to it
    std::string m_event;
    std::string m_data;
    bool m_hasData = false;
};

}  // namespace dsv2::remote
