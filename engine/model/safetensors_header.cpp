#include "model/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace dsv2 {
namespace {

using Json = nlohmann::json;

Status bad(const std::string& source, const std::string& what) {
    return {StatusCode::InvalidData, source + ": " + what};
}

std::string quoteName(const std::string& name) {
    // Names come from an untrusted file: keep messages one line and short.
    std::string out;
    for (char ch : name.substr(0, 200)) out += (static_cast<unsigned char>(ch) < 0x20) ? '?' : ch;
    if (name.size() > 200) out += "...";
    return "'" + out + "'";
}

Result<SafetensorsEntry> parseEntry(const std::string& source, const std::string& name, const Json& v,
                                    uint64_t dataBytes) {
    const std::string where = "tensor " + quoteName(name);
    if (!v.is_object()) return bad(source, where + ": expected an object, found " + v.type_name());
    SafetensorsEntry e;
    e.name = name;

    if (!v.contains("dtype") || !v.at("dtype").is_string()) return bad(source, where + ": \"dtype\" missing or not a string");
    const std::string dtype = v.at("dtype").get<std::string>();
    e.dtype = dtypeFromName(dtype);
    if (e.dtype == DType::Unknown)
        return Status(StatusCode::Unsupported, source + ": " + where + ": unknown dtype " + quoteName(dtype));

    if (!v.contains("shape") || !v.at("shape").is_array()) return bad(source, where + ": \"shape\" missing or not a list");
    const Json& shape = v.at("shape");
    if (shape.size() > static_cast<size_t>(kSafetensorsMaxRank))
        return bad(source, where + ": rank " + std::to_string(shape.size()) + " exceeds the limit of " +
                               std::to_string(kSafetensorsMaxRank));
    uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : shape) {
        if (!d.is_number_unsigned()) return bad(source, where + ": shape entries must be non-negative integers");
        const uint64_t dim = d.get<uint64_t>();
        if (dim > static_cast<uint64_t>(INT64_MAX)) return bad(source, where + ": dimension too large");
        e.shape.push_back(static_cast<int64_t>(dim));
        if (dim != 0 && numel > UINT64_MAX / dim) overflow = true;
        numel *= dim;
    }
    const uint64_t elementSize = dtypeSize(e.dtype);
    if (overflow || (elementSize != 0 && numel > UINT64_MAX / elementSize))
        return bad(source, where + ": shape " + shape.dump() + " is too large");

    if (!v.contains("data_offsets") || !v.at("data_offsets").is_array() || v.at("data_offsets").size() != 2 ||
        !v.at("data_offsets")[0].is_number_unsigned() || !v.at("data_offsets")[1].is_number_unsigned())
        return bad(source, where + ": \"data_offsets\" must be [begin, end] with non-negative integers");
    e.begin = v.at("data_offsets")[0].get<uint64_t>();
    e.end = v.at("data_offsets")[1].get<uint64_t>();
    if (e.end < e.begin)
        return bad(source, where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                               "] end before begin");
    if (e.end > dataBytes)
        return bad(source, where + ": data_offsets end " + std::to_string(e.end) + " lies beyond the " +
                               std::to_string(dataBytes) +
                               " data bytes in the file: the file is truncated or its header is wrong "
                               "(download it again)");
    const uint64_t expected = numel * elementSize;
    if (e.end - e.begin != expected)
        return bad(source, where + ": " + std::to_string(e.end - e.begin) + " bytes in data_offsets, but dtype " + dtype +
                               " × shape " + shape.dump() + " needs " + std::to_string(expected));
    return e;
}

}  // namespace

Result<SafetensorsHeader> parseSafetensorsHeader(std::span<const std::byte> file, const std::string& source) {
    if (file.size() < 8)
        return bad(source, "only " + std::to_string(file.size()) +
                               " bytes: too short for a safetensors file (8-byte header length missing); "
                               "the file is truncated or empty");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
    if (n > file.size() - 8)
        return bad(source, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(file.size()) +
                               ": the file is truncated or not a safetensors file");
    if (n > kSafetensorsMaxHeaderBytes)
        return bad(source, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
    if (n < 2) return bad(source, "header of " + std::to_string(n) + " bytes cannot hold a JSON object");

    SafetensorsHeader h;
    h.headerBytes = n;
    h.dataStart = 8 + n;
    h.dataBytes = file.size() - h.dataStart;

    const char* text = reinterpret_cast<const char*>(file.data() + 8);
    if (text[0] != '{') return bad(source, "header does not start with '{': not a safetensors file");

    // Duplicate top-level names would silently shadow each other in a JSON object: refuse them.
    std::set<std::string> seen;
    std::string duplicate;
    const auto rejectDuplicates = [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (depth == 1 && event == Json::parse_event_t::key && duplicate.empty()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!seen.insert(key).second) duplicate = key;
        }
        return true;
    };
    Json root;
    try {
        root = Json::parse(text, text + n, rejectDuplicates);
    } catch (const Json::exception& e) {
        return bad(source, std::string("header is not valid JSON (") + e.what() + ")");
    }
    if (!duplicate.empty()) return bad(source, "tensor " + quoteName(duplicate) + " appears twice in the header");
    if (!root.is_object()) return bad(source, "header is not a JSON object");

    try {
        for (const auto& item : root.items()) {
            if (item.key() == "__metadata__") {
                if (!item.value().is_object()) return bad(source, "\"__metadata__\" must be an object");
                for (const auto& m : item.value().items()) {
                    if (!m.value().is_string())
                        return bad(source, "\"__metadata__\" value " + quoteName(m.key()) + " is not a string");
                    h.metadata[m.key()] = m.value().get<std::string>();
                }
                continue;
            }
            if (item.key().empty()) return bad(source, "a tensor has an empty name");
            DSV2_ASSIGN_OR_RETURN(SafetensorsEntry entry, parseEntry(source, item.key(), item.value(), h.dataBytes));
            h.tensors.push_back(std::move(entry));
        }
    } catch (const Json::exception& e) {  // defensive: every access above is type-checked first
        return bad(source, std::string("header: ") + e.what());
    }

    // No two tensors may share bytes (zero-size tensors occupy none).
    std::sort(h.tensors.begin(), h.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    const SafetensorsEntry* previous = nullptr;
    for (const auto& e : h.tensors) {
        if (e.begin == e.end) continue;
        if (previous && e.begin < previous->end)
            return bad(source, "tensors " + quoteName(previous->name) + " [" + std::to_string(previous->begin) + ", " +
                                   std::to_string(previous->end) + ") and " + quoteName(e.name) + " [" +
                                   std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                   ") overlap: the header is corrupt");
        previous = &e;
    }
    return h;
}

}  // namespace dsv2
