#pragma once
// Who is streaming a message: "host/boot/pid/start" of the writing process, stored in messages.writer.
// On open, a 'streaming' message is only marked interrupted when its writer is known to be gone, so a
// second process (the CLI while the GUI generates) never cuts off a live answer.

#include <string>

namespace dsv2::storage::detail {

std::string currentWriterIdentity();

enum class WriterState { Alive, Gone, Unknown };
// Unknown: written on another host (a shared folder); left alone unless it has been silent for long.
WriterState writerState(const std::string& identity);

}  // namespace dsv2::storage::detail
